// Supervision: the reports screen. Tickets (complaints, SLA, CSAT, reopen rate, over a period and
// over time), the points liability and the churn model's backtest, each from its public report route.
import { h, t, api, ui, formatDate, formatMoney, formatNumber } from "../lib/console.js";

export const messages = {
  en: {
    "supervision.reports": "Reports", "supervision.period": "Period", "supervision.since": "From",
    "supervision.until": "To (inclusive)", "supervision.show": "Show", "supervision.period_shown": "Tickets opened {since} – {until}",
    "supervision.tickets": "Tickets", "supervision.kpi.tickets": "Tickets opened",
    "supervision.kpi.fr_avg": "Average first response", "supervision.kpi.res_avg": "Average resolution",
    "supervision.kpi.reopen": "Reopen rate", "supervision.kpi.fr_measured": "First responses measured",
    "supervision.kpi.res_measured": "Resolutions measured",
    "supervision.complaints": "Complaints by category and root cause", "supervision.no_root_cause": "not given",
    "supervision.no_category": "uncategorised", "supervision.over_time": "Complaints by category over time",
    "supervision.sla": "SLA met %", "supervision.sla.first_response": "First response", "supervision.sla.resolution": "Resolution",
    "supervision.sla.met_pct": "Met %", "supervision.sla_note": "Of the tickets whose target was reached or missed in the period.",
    "supervision.sla_agent": "SLA met % per agent", "supervision.sla_group": "SLA met % per team",
    "supervision.csat_agent": "CSAT by agent", "supervision.csat_group": "CSAT by queue", "supervision.csat.average": "Average (1–5)",
    "supervision.csat.responses": "Responses", "supervision.csat.satisfied": "Satisfied (4–5)",
    "supervision.csat.agent_recorded": "Recorded by an agent", "supervision.unassigned": "unassigned",
    "supervision.agent": "Agent", "supervision.queue": "Queue", "supervision.no_queue": "no queue",
    "supervision.backlog": "Backlog: open tickets", "supervision.backlog_note": "{n} tickets new, open or waiting for the customer now ({priorities}), newest first.",
    "supervision.ticket": "Ticket", "supervision.subject": "Subject", "supervision.status": "Status", "supervision.priority": "Priority",
    "supervision.category": "Category", "supervision.assignee": "Assignee", "supervision.opened": "Opened",
    "supervision.liability": "Points liability", "supervision.as_of": "As of {when}",
    "supervision.points.available": "Available", "supervision.points.pending": "Pending", "supervision.points.debt": "Debt owed back",
    "supervision.points.expiring_30d": "Expiring within 30 days", "supervision.points.expiring_90d": "Expiring within 90 days",
    "supervision.points": "Points", "supervision.members_owed": "Members holding points",
    "supervision.points_value": "Value off orders ({currency})", "supervision.rewards_owed": "Rewards owed (not delivered)",
    "supervision.coupons_outstanding": "Coupons still usable", "supervision.coupons_face_value": "Face value ({currency})",
    "supervision.redemptions": "Redemptions", "supervision.units": "Units",
    "supervision.churn": "Churn model quality", "supervision.model.version": "Version", "supervision.model.kind": "Kind",
    "supervision.model.trained_at": "Fitted", "supervision.model.method": "Backtest", "supervision.model.auc": "Holdout AUC",
    "supervision.model.precision": "Precision in the top 10 %", "supervision.model.ece": "Expected calibration error",
    "supervision.model.churn_rate": "Holdout churn rate", "supervision.model.customers": "Holdout customers",
    "supervision.model.no_backtest": "This model has no backtest yet (kind {kind}).",
    "supervision.model.coefficients": "Calibration coefficients", "supervision.model.weight": "Weight",
    "supervision.model.quality": "Backtest figures", "supervision.model.params": "BG/NBD parameters", "supervision.model.horizon": "Horizon (days)", "supervision.model.value": "Value",
    "supervision.model.calibration": "Calibration: predicted against real churn, by score bin",
    "supervision.model.predicted": "Mean predicted risk", "supervision.model.observed": "Real churn rate",
  },
  "zh-CN": {
    "supervision.reports": "报表", "supervision.period": "期间", "supervision.since": "开始",
    "supervision.until": "结束（含）", "supervision.show": "显示", "supervision.period_shown": "{since} – {until} 创建的工单",
    "supervision.tickets": "工单", "supervision.kpi.tickets": "新建工单",
    "supervision.kpi.fr_avg": "平均首次响应", "supervision.kpi.res_avg": "平均解决时长",
    "supervision.kpi.reopen": "重开率", "supervision.kpi.fr_measured": "计入的首次响应",
    "supervision.kpi.res_measured": "计入的解决",
    "supervision.complaints": "按类别和根因的投诉", "supervision.no_root_cause": "未填写",
    "supervision.no_category": "未分类", "supervision.over_time": "按类别的投诉趋势",
    "supervision.sla": "SLA 达成率", "supervision.sla.first_response": "首次响应", "supervision.sla.resolution": "解决",
    "supervision.sla.met_pct": "达成 %", "supervision.sla_note": "以期间内目标已达成或已超时的工单计。",
    "supervision.sla_agent": "各客服 SLA 达成率", "supervision.sla_group": "各团队 SLA 达成率",
    "supervision.csat_agent": "按客服的满意度", "supervision.csat_group": "按队列的满意度", "supervision.csat.average": "平均分（1–5）",
    "supervision.csat.responses": "评价数", "supervision.csat.satisfied": "满意（4–5）",
    "supervision.csat.agent_recorded": "客服代录", "supervision.unassigned": "未分配",
    "supervision.agent": "客服", "supervision.queue": "队列", "supervision.no_queue": "无队列",
    "supervision.backlog": "积压：未结工单", "supervision.backlog_note": "当前共 {n} 张新建、处理中或等待客户的工单（{priorities}），最新在前。",
    "supervision.ticket": "工单", "supervision.subject": "主题", "supervision.status": "状态", "supervision.priority": "优先级",
    "supervision.category": "类别", "supervision.assignee": "处理人", "supervision.opened": "创建时间",
    "supervision.liability": "积分负债", "supervision.as_of": "截至 {when}",
    "supervision.points.available": "可用", "supervision.points.pending": "待生效", "supervision.points.debt": "欠回积分",
    "supervision.points.expiring_30d": "30 天内过期", "supervision.points.expiring_90d": "90 天内过期",
    "supervision.points": "积分", "supervision.members_owed": "持有积分的会员",
    "supervision.points_value": "可抵扣金额（{currency}）", "supervision.rewards_owed": "待交付的兑换",
    "supervision.coupons_outstanding": "仍可用的优惠券", "supervision.coupons_face_value": "面值（{currency}）",
    "supervision.redemptions": "兑换数", "supervision.units": "件数",
    "supervision.churn": "流失模型质量", "supervision.model.version": "版本", "supervision.model.kind": "类型",
    "supervision.model.trained_at": "训练时间", "supervision.model.method": "回测方式", "supervision.model.auc": "留出集 AUC",
    "supervision.model.precision": "前 10% 精确率", "supervision.model.ece": "期望校准误差",
    "supervision.model.churn_rate": "留出集流失率", "supervision.model.customers": "留出集客户数",
    "supervision.model.no_backtest": "该模型尚无回测（类型 {kind}）。",
    "supervision.model.coefficients": "校准系数", "supervision.model.weight": "权重",
    "supervision.model.quality": "回测指标", "supervision.model.params": "BG/NBD 参数", "supervision.model.horizon": "预测期（天）", "supervision.model.value": "数值",
    "supervision.model.calibration": "校准：各评分区间的预测与实际流失",
    "supervision.model.predicted": "平均预测风险", "supervision.model.observed": "实际流失率",
  },
};

const DAY_MS = 86_400_000;
const MAX_BUCKETS = 12;

// The local calendar day (yyyy-mm-dd) of an instant, for a date input.
function isoDate(date) {
  const pad = (n) => String(n).padStart(2, "0");
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}`;
}

// Local midnight of a yyyy-mm-dd, as an instant (the API wants times with a zone).
function startOfDay(day) { return new Date(`${day}T00:00:00`); }

function duration(seconds) {
  if (seconds === null || seconds === undefined) return t("common.none");
  const hours = seconds / 3600;
  return hours >= 1 ? `${formatNumber(hours, { maximumFractionDigits: 1 })} h`
    : `${formatNumber(seconds / 60, { maximumFractionDigits: 0 })} min`;
}

function pct(share) { return share === null || share === undefined ? t("common.none") : `${formatNumber(share * 100, { maximumFractionDigits: 1 })} %`; }

function kv(pairs) {
  return h("dl", { class: "kv" }, pairs.map(([label, value]) => [h("dt", {}, label), h("dd", {}, value)]));
}

// The period cut into at most MAX_BUCKETS equal steps of whole days (a week when it fits).
function buckets(since, until) {
  const days = Math.max(1, Math.round((until - since) / DAY_MS));
  const step = days <= 7 * MAX_BUCKETS ? Math.min(7, days) : Math.ceil(days / MAX_BUCKETS);
  const out = [];
  for (let start = since; start < until; start = new Date(start.getTime() + step * DAY_MS)) {
    out.push([start, new Date(Math.min(start.getTime() + step * DAY_MS, until.getTime()))]);
  }
  return out;
}

// A chart with nothing to draw: its title and "Nothing here yet".
function empty(title) {
  return h("div", {}, h("h3", {}, title), h("p", { class: "muted" }, t("common.empty")));
}

function complaintsChart(report) {
  const label = (value, fallback) => value ?? t(fallback);
  const categories = [...new Set(report.complaints_by_category.map((r) => label(r.category, "supervision.no_category")))];
  const causes = [...new Set(report.complaints_by_category.map((r) => label(r.root_cause, "supervision.no_root_cause")))];
  const datasets = causes.map((cause) => ({ label: cause, data: categories.map((category) => report.complaints_by_category
    .filter((r) => label(r.category, "supervision.no_category") === category && label(r.root_cause, "supervision.no_root_cause") === cause)
    .reduce((sum, r) => sum + r.tickets, 0)) }));
  if (!categories.length) return empty(t("supervision.complaints"));
  return ui.chart("bar", { labels: categories, datasets }, { id: "complaints-by-category", title: t("supervision.complaints"),
    options: { scales: { x: { stacked: true }, y: { stacked: true, beginAtZero: true, ticks: { precision: 0 } } } } });
}

// Complaints per category in each step of the period: one report per step, drawn once all are in.
async function overTimeReports(since, until) {
  const steps = buckets(since, until);
  const reports = await Promise.all(steps.map(([from, to]) => api.get("/v1/ticketing/reports", {
    since: from.toISOString(), until: to.toISOString() })));
  return { steps, reports };
}

function overTimeChart({ steps, reports }) {
  const categories = [...new Set(reports.flatMap((r) => r.complaints_by_category.map((c) => c.category ?? t("supervision.no_category"))))];
  if (!categories.length) return empty(t("supervision.over_time"));
  const datasets = categories.map((category) => ({ label: category, data: reports.map((r) => r.complaints_by_category
    .filter((c) => (c.category ?? t("supervision.no_category")) === category).reduce((sum, c) => sum + c.tickets, 0)) }));
  return ui.chart("line", { labels: steps.map(([from]) => formatDate(from, false)), datasets },
    { id: "complaints-over-time", title: t("supervision.over_time"),
      options: { scales: { y: { beginAtZero: true, ticks: { precision: 0 } } } } });
}

function csatSection(rows, key, title, id, keyLabel, none) {
  const name = (row) => row[key] ?? t(none);
  if (!rows.length) return h("div", { class: "card" }, h("h3", {}, title), h("p", { class: "muted" }, t("common.empty")));
  return h("div", { class: "card" }, ui.chart("bar", { labels: rows.map(name), datasets: [
    { label: t("supervision.csat.average"), data: rows.map((r) => r.average) }] },
    { id, title, options: { scales: { y: { beginAtZero: true, max: 5 } } } }),
  ui.table([{ key, label: keyLabel, render: name }, { key: "responses", label: t("supervision.csat.responses"), num: true },
    { key: "average", label: t("supervision.csat.average"), num: true },
    { key: "satisfied_share", label: t("supervision.csat.satisfied"), num: true, render: (r) => pct(r.satisfied_share) },
    { key: "agent_recorded", label: t("supervision.csat.agent_recorded"), num: true }], rows, { caption: title }));
}

async function ticketsReport(since, until, withReport) {
  // Everything fetched before any chart is built: a chart draws only if it is in the page by the next frame.
  const [report, overTime] = await Promise.all([
    api.get("/v1/ticketing/reports", { since: since.toISOString(), until: until.toISOString() }),
    overTimeReports(since, until)]);
  withReport(report);
  const sla = report.sla;
  const section = h("section", { class: "supervision-report", "aria-labelledby": "sup-tickets", "data-since": report.since,
                                 "data-until": report.until },
    h("h2", { id: "sup-tickets" }, t("supervision.tickets")),
    h("p", { class: "muted" }, t("supervision.period_shown", { since: formatDate(since, false),
      until: formatDate(new Date(until.getTime() - 1), false) })),
    h("div", { class: "card" }, kv([
      [t("supervision.kpi.tickets"), formatNumber(report.tickets)],
      [t("supervision.kpi.fr_avg"), duration(report.avg_first_response_seconds)],
      [t("supervision.kpi.res_avg"), duration(report.avg_resolution_seconds)],
      [t("supervision.kpi.reopen"), pct(report.reopen_rate)],
      [t("supervision.kpi.fr_measured"), formatNumber(sla.first_response_measured)],
      [t("supervision.kpi.res_measured"), formatNumber(sla.resolution_measured)]])),
    h("div", { class: "grid" },
      h("div", { class: "card" }, complaintsChart(report)),
      h("div", { class: "card" }, ui.chart("bar", {
        labels: [t("supervision.sla.first_response"), t("supervision.sla.resolution")],
        datasets: [{ label: t("supervision.sla.met_pct"), data: [sla.first_response_met_pct, sla.resolution_met_pct] }] },
      { id: "sla-met", title: t("supervision.sla"), options: { scales: { y: { beginAtZero: true, max: 100 } } } }),
      h("p", { class: "muted" }, t("supervision.sla_note")))),
    h("div", { class: "grid" },
      slaBy(report.sla_by_agent, "agent", t("supervision.sla_agent"), "sla-by-agent", "supervision.unassigned"),
      slaBy(report.sla_by_group, "group_id", t("supervision.sla_group"), "sla-by-group", "supervision.no_queue")),
    h("div", { class: "card" }, overTimeChart(overTime)),
    h("div", { class: "grid" },
      csatSection(report.csat_by_agent, "agent", t("supervision.csat_agent"), "csat-by-agent", t("supervision.agent"),
        "supervision.unassigned"),
      csatSection(report.csat_by_group, "group_id", t("supervision.csat_group"), "csat-by-group", t("supervision.queue"),
        "supervision.no_queue")));
  return section;
}

// SLA met % of first response and resolution for each agent (the assignee) or team.
function slaBy(rows, key, title, id, none) {
  if (!rows?.length) return h("div", { class: "card" }, h("h3", {}, title), h("p", { class: "muted" }, t("common.empty")));
  return h("div", { class: "card" }, ui.chart("bar", { labels: rows.map((r) => r[key] ?? t(none)), datasets: [
    { label: t("supervision.sla.first_response"), data: rows.map((r) => r.first_response_met_pct) },
    { label: t("supervision.sla.resolution"), data: rows.map((r) => r.resolution_met_pct) }] },
  { id, title, options: { scales: { y: { beginAtZero: true, max: 100 } } } }));
}

function backlog(counts) {
  const priorities = Object.entries(counts?.by_priority || {}).map(([p, n]) => `${p} ${formatNumber(n)}`).join(" · ");
  return h("section", { class: "card", "aria-labelledby": "sup-backlog" }, h("h2", { id: "sup-backlog" }, t("supervision.backlog")),
    h("p", { class: "muted", "data-backlog": counts?.open ?? "" },
      t("supervision.backlog_note", { n: formatNumber(counts?.open), priorities: priorities || t("common.none") })),
    ui.pager({ load: (cursor) => api.get("/v1/tickets", { status: "active", limit: 20, cursor }),
      render: (items) => ui.table([
        { key: "ticket_id", label: t("supervision.ticket"),
          render: (r) => h("a", { href: `#/tickets/${encodeURIComponent(r.ticket_id)}` }, r.ticket_id) },
        { key: "subject", label: t("supervision.subject") }, { key: "status", label: t("supervision.status"), render: (r) => ui.badge(r.status) },
        { key: "priority", label: t("supervision.priority"), render: (r) => ui.badge(r.priority, r.priority) },
        { key: "category", label: t("supervision.category") }, { key: "assignee", label: t("supervision.assignee") },
        { key: "created_at", label: t("supervision.opened"), render: (r) => formatDate(r.created_at) }], items) }));
}

async function liability() {
  const report = await api.get("/v1/loyalty/reports/liability");
  const p = report.points;
  const kinds = ["available", "pending", "debt", "expiring_30d", "expiring_90d"];
  const owed = Object.entries(report.rewards_owed.by_status);
  return h("section", { class: "card", "aria-labelledby": "sup-liability" }, h("h2", { id: "sup-liability" }, t("supervision.liability")),
    h("p", { class: "muted" }, t("supervision.as_of", { when: formatDate(report.as_of) })),
    h("div", { class: "grid" },
      ui.chart("bar", { labels: kinds.map((k) => t(`supervision.points.${k}`)),
        datasets: [{ label: t("supervision.points"), data: kinds.map((k) => p[k]) }] },
      { id: "points-liability", title: t("supervision.liability"), options: { scales: { y: { beginAtZero: true } } } }),
      h("div", {}, kv([
        [t("supervision.members_owed"), formatNumber(p.members_owed)],
        ...Object.entries(report.points_value).flatMap(([currency, value]) => [
          [`${t("supervision.points_value", { currency })}: ${t("supervision.points.available")}`, formatMoney(value.available, currency)],
          [`${t("supervision.points_value", { currency })}: ${t("supervision.points.pending")}`, formatMoney(value.pending, currency)]]),
        [t("supervision.coupons_outstanding"), formatNumber(report.coupons.outstanding)],
        ...Object.entries(report.coupons.face_value).map(([currency, value]) => [t("supervision.coupons_face_value", { currency }),
          formatMoney(value, currency)])]),
      h("h3", {}, t("supervision.rewards_owed")),
      owed.length ? ui.table([{ key: "status", label: t("supervision.status") },
        { key: "redemptions", label: t("supervision.redemptions"), num: true }, { key: "units", label: t("supervision.units"), num: true },
        { key: "points", label: t("supervision.points"), num: true }], owed.map(([status, v]) => ({ status, ...v })))
        : h("p", { class: "muted" }, t("common.empty")))));
}

async function churnModel() {
  const model = await api.get("/v1/churn/model");
  const report = model.report || {};
  const holdout = report.holdout;
  const coefficients = Object.entries(report.coefficients || {});
  const fixed = (v, digits = 3) => (v === null || v === undefined ? t("common.none") : formatNumber(v, { maximumFractionDigits: digits }));
  return h("section", { class: "card", "aria-labelledby": "sup-churn" }, h("h2", { id: "sup-churn" }, t("supervision.churn")),
    kv([[t("supervision.model.version"), model.version], [t("supervision.model.kind"), model.kind],
      [t("supervision.model.trained_at"), formatDate(model.trained_at)],
      [t("supervision.model.horizon"), formatNumber(model.params?.horizon_days)], [t("supervision.model.method"), report.method ?? t("common.none")],
      [t("supervision.model.params"), Object.entries(model.params?.bgnbd || {}).filter(([, v]) => typeof v === "number")
        .map(([k, v]) => `${k} ${formatNumber(v, { maximumFractionDigits: 3 })}`).join(" · ") || t("common.none")]]),
    holdout ? h("div", { class: "grid" },
      ui.chart("bar", { labels: [t("supervision.model.auc"), t("supervision.model.precision"), t("supervision.model.ece"),
        t("supervision.model.churn_rate")], datasets: [{ label: t("supervision.model.value"),
        data: [holdout.auc, holdout.precision_at_top_10pct, holdout.calibration_error, holdout.churn_rate] }] },
      { id: "churn-backtest", title: t("supervision.model.quality"), options: { scales: { y: { beginAtZero: true, max: 1 } } } }),
      kv([[t("supervision.model.customers"), formatNumber(holdout.customers)], [t("supervision.model.auc"), fixed(holdout.auc)],
        [t("supervision.model.precision"), fixed(holdout.precision_at_top_10pct)],
        [t("supervision.model.ece"), fixed(holdout.calibration_error)], [t("supervision.model.churn_rate"), fixed(holdout.churn_rate)]]))
      : h("p", { class: "muted" }, t("supervision.model.no_backtest", { kind: model.kind })),
    coefficients.length ? ui.chart("bar", { labels: coefficients.map(([name]) => name), datasets: [
      { label: t("supervision.model.weight"), data: coefficients.map(([, w]) => w) }] },
    { id: "churn-coefficients", title: t("supervision.model.coefficients"), options: { indexAxis: "y" } }) : null,
    holdout?.calibration?.length ? calibrationPlot(holdout.calibration) : null);
}

// The backtest's reliability diagram: per score bin, the mean predicted risk beside the real churn
// rate of the same customers (equal for a calibrated model).
function calibrationPlot(bins) {
  const rate = (v) => Math.round(v * 1000) / 1000;
  return ui.chart("line", { labels: bins.map((b) => `${b.from.toFixed(1)}–${b.to.toFixed(1)} (${b.customers})`),
    datasets: [{ label: t("supervision.model.predicted"), data: bins.map((b) => rate(b.mean_score)) },
      { label: t("supervision.model.observed"), data: bins.map((b) => rate(b.churn_rate)) }] },
  { id: "churn-calibration", title: t("supervision.model.calibration"),
    options: { scales: { y: { beginAtZero: true, max: 1 } } } });
}

async function reports(main) {
  const today = new Date();
  const since = h("input", { type: "date", name: "since", required: true, value: isoDate(new Date(today.getTime() - 29 * DAY_MS)) });
  const until = h("input", { type: "date", name: "until", required: true, value: isoDate(today) });
  const tickets = h("div", {});
  const backlogBox = h("div", {});
  // The backlog is now, whatever the period: its count comes with the report, its list page by page.
  const withReport = (report) => backlogBox.replaceChildren(backlog(report.backlog));
  const show = () => {
    const from = startOfDay(since.value);
    const to = new Date(startOfDay(until.value).getTime() + DAY_MS);  // the API's until is exclusive
    tickets.replaceChildren();
    return ui.load(tickets, () => ticketsReport(from, to, withReport));
  };
  main.append(h("h1", {}, t("supervision.reports")),
    h("div", { class: "card" }, ui.form({ submitLabel: t("supervision.show"), onsubmit: show,
      fields: h("div", { class: "row" }, ui.field(t("supervision.since"), since), ui.field(t("supervision.until"), until)) })),
    tickets);
  const rest = h("div", {});
  main.append(rest);
  const liabilityBox = h("div", {});
  const churnBox = h("div", {});
  rest.append(backlogBox, liabilityBox, churnBox);
  await Promise.all([show(), ui.load(liabilityBox, liability), ui.load(churnBox, churnModel)]);
}

export const routes = [
  { path: "/reports", nav: "supervision.reports", group: "supervision", roles: ["supervisor"], render: (main) => reports(main) },
];
