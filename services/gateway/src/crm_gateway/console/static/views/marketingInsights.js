// Marketing: who the customers are. Segments with their sizes and the RFM grid (the profile API's
// aggregates, which marketers may read), the churn risk distribution (the churn API's aggregates, for
// marketers too) and the valuable-at-risk list with its reasons (customers' scores: staff only).
// Customer ids and counts only, never a name or an address.
import { h, t, api, ui, formatDate, formatMoney, formatNumber } from "../lib/console.js";

const RFM = ["champions", "loyal", "potential", "new", "at_risk", "cannot_lose", "hibernating", "lost"];
const RFM_RULES = { cannot_lose: "R ≤ 2, F ≥ 4, M ≥ 4", champions: "R ≥ 4, F ≥ 4, M ≥ 4", loyal: "R ≥ 3, F ≥ 3",
  new: "R ≥ 4, F = 1", potential: "R ≥ 3", at_risk: "R ≤ 2, F ≥ 3", hibernating: "R = 2", lost: "R = 1" };
const LEVELS = ["low", "medium", "high"];
const staff = (ctx) => ctx.identity.role === "supervisor";

export const messages = {
  en: {
    "marketing.segments": "Segments", "marketing.segments.rfm": "RFM segments (customers)",
    "marketing.segments.custom": "Custom segments", "marketing.segments.id": "Segment id", "marketing.segments.name": "Name",
    "marketing.segments.members": "Customers", "marketing.segments.rule": "Rule", "marketing.segments.updated": "Updated",
    "marketing.segments.rules_title": "How RFM names customers (scores 1–5: recency, frequency, money)",
    "marketing.grid.heading": "RFM grid",
    "marketing.grid.title": "Customers and value by recency (R) and frequency (F)",
    "marketing.grid.r": "Recency score (R)", "marketing.grid.f": "Frequency score (F)",
    "marketing.grid.corner": "R \\ F", "marketing.grid.row": "R {r}", "marketing.grid.col": "F {f}",
    "marketing.grid.cell": "R {r}, F {f}: {customers} customers, {value}",
    "marketing.grid.note": "{customers} scored customers, net spend {value} (only {currency} counts); scored {at}. "
      + "Bubble size: customers. Erased customers and those with no order are not counted.",
    "marketing.churn": "Churn risk", "marketing.churn.distribution": "Customers by churn risk level",
    "marketing.churn.scored_total": "{n} customers scored (those with a paid order).",
    "marketing.churn.scores": "Customers by risk score",
    "marketing.churn.at_risk": "Valuable customers at risk", "marketing.churn.level": "Level",
    "marketing.churn.any": "Any level", "marketing.churn.sort": "Order by", "marketing.churn.sort.value_at_risk": "Value at risk",
    "marketing.churn.sort.score": "Score", "marketing.churn.customer": "Customer id", "marketing.churn.score": "Score",
    "marketing.churn.value_12m": "Spend, 12 months", "marketing.churn.value_at_risk": "Value at risk",
    "marketing.churn.reasons": "Reasons", "marketing.churn.scored": "Scored",
    "marketing.churn.model": "Model in force", "marketing.churn.version": "Version", "marketing.churn.kind": "Kind",
    "marketing.churn.trained": "Trained", "marketing.churn.auc": "Holdout AUC",
    "marketing.churn.role_note": "Customers' scores, their reasons and the model are for staff only: a marketer "
      + "sees the distribution, and targets a level in an audience.",
    "marketing.churn.show": "Show",
  },
  "zh-CN": {
    "marketing.segments": "客户分群", "marketing.segments.rfm": "RFM 分群（客户数）",
    "marketing.segments.custom": "自定义分群", "marketing.segments.id": "分群 ID", "marketing.segments.name": "名称",
    "marketing.segments.members": "客户数", "marketing.segments.rule": "规则", "marketing.segments.updated": "更新时间",
    "marketing.segments.rules_title": "RFM 如何命名客户（1–5 分：最近购买、频率、金额）",
    "marketing.grid.heading": "RFM 网格",
    "marketing.grid.title": "按最近购买（R）和购买频率（F）统计的客户数与价值",
    "marketing.grid.r": "最近购买得分（R）", "marketing.grid.f": "购买频率得分（F）",
    "marketing.grid.corner": "R \\ F", "marketing.grid.row": "R {r}", "marketing.grid.col": "F {f}",
    "marketing.grid.cell": "R {r}，F {f}：{customers} 位客户，{value}",
    "marketing.grid.note": "已评分客户 {customers} 位，净消费 {value}（仅计 {currency}）；评分时间 {at}。"
      + "气泡大小表示客户数。已删除的客户和尚无订单的客户不计入。",
    "marketing.churn": "流失风险", "marketing.churn.distribution": "各流失风险等级的客户数",
    "marketing.churn.scored_total": "已评分客户 {n} 位（有付款订单的客户）。",
    "marketing.churn.scores": "各风险分数段的客户数",
    "marketing.churn.at_risk": "有流失风险的高价值客户", "marketing.churn.level": "等级",
    "marketing.churn.any": "所有等级", "marketing.churn.sort": "排序", "marketing.churn.sort.value_at_risk": "风险价值",
    "marketing.churn.sort.score": "分数", "marketing.churn.customer": "客户 ID", "marketing.churn.score": "分数",
    "marketing.churn.value_12m": "近 12 个月消费", "marketing.churn.value_at_risk": "风险价值",
    "marketing.churn.reasons": "原因", "marketing.churn.scored": "评分时间",
    "marketing.churn.model": "当前模型", "marketing.churn.version": "版本", "marketing.churn.kind": "类型",
    "marketing.churn.trained": "训练时间", "marketing.churn.auc": "验证集 AUC",
    "marketing.churn.role_note": "流失接口（分数、原因和模型）仅员工可用：营销人员可查看分布，并在受众中按等级定位。",
    "marketing.churn.show": "显示",
  },
};

function rfmRules() {
  return h("details", { class: "card" }, h("summary", {}, t("marketing.segments.rules_title")),
    ui.table([{ key: "name", label: t("marketing.segments.name") }, { key: "id", label: t("marketing.segments.id") },
              { key: "rule", label: t("marketing.segments.rule") }],
    Object.entries(RFM_RULES).map(([name, rule]) => ({ name: t(`marketing.rfm.${name}`), id: `rfm:${name}`, rule }))));
}

// The 5×5 grid as a Chart.js bubble chart (x: F, y: R, area: customers) and, for screen readers and
// tests, a table of the same numbers: rows R 5..1, columns F 1..5, each cell's data-value the
// customers (data-amount the net spend). ui.chart's table has one row per label and one column per
// dataset, which is not a grid's shape, so the figure is built here.
function rfmGrid(grid) {
  const money = (value) => formatMoney(value, grid.currency);
  const at = (r, f) => grid.cells.find((c) => c.r === r && c.f === f) || { r, f, customers: 0, value: "0" };
  const scores = [1, 2, 3, 4, 5];
  const canvas = h("canvas", { role: "img", "aria-label": t("marketing.grid.title") });
  const table = h("table", { class: "rfm-grid" },
    h("thead", {}, h("tr", {}, h("th", { scope: "col" }, t("marketing.grid.corner")),
      scores.map((f) => h("th", { scope: "col", class: "num" }, t("marketing.grid.col", { f }))))),
    h("tbody", {}, [...scores].reverse().map((r) => h("tr", {}, h("th", { scope: "row" }, t("marketing.grid.row", { r })),
      scores.map((f) => {
        const cell = at(r, f);
        return h("td", { class: "num", "data-r": r, "data-f": f, "data-value": cell.customers, "data-amount": cell.value },
          formatNumber(cell.customers), h("br", {}), h("small", { class: "muted" }, money(cell.value)));
      })))));
  const figure = h("figure", { class: "chart", "data-chart": "rfm-grid" }, h("figcaption", {}, t("marketing.grid.title")),
    canvas, table, h("p", { class: "muted" }, t("marketing.grid.note", { customers: formatNumber(grid.customers),
      value: money(grid.value), currency: grid.currency, at: formatDate(grid.scored_at) })));
  const largest = Math.max(1, ...grid.cells.map((c) => c.customers));
  const points = grid.cells.filter((c) => c.customers > 0).map((c) => ({ x: c.f, y: c.r,
    r: 4 + 20 * Math.sqrt(c.customers / largest), customers: c.customers, value: c.value }));
  // Scores 1..5 only as ticks; the half-score margins keep the outer bubbles inside the plot.
  const axis = (title, label) => ({ min: 0.5, max: 5.5, title: { display: true, text: title },
    afterBuildTicks: (scale) => { scale.ticks = scores.map((value) => ({ value })); },
    ticks: { callback: (value) => label(value) } });
  requestAnimationFrame(() => {
    if (!window.Chart || !canvas.isConnected) return;
    figure.chart = new window.Chart(canvas, { type: "bubble",
      data: { datasets: [{ label: t("marketing.segments.members"), data: points }] },
      options: { animation: false, responsive: true, maintainAspectRatio: false,
        scales: { x: axis(t("marketing.grid.f"), (f) => t("marketing.grid.col", { f })),
                  y: axis(t("marketing.grid.r"), (r) => t("marketing.grid.row", { r })) },
        plugins: { legend: { display: false }, tooltip: { callbacks: { label: (item) => t("marketing.grid.cell", {
          r: item.raw.y, f: item.raw.x, customers: formatNumber(item.raw.customers), value: money(item.raw.value) }) } } } } });
  });
  return figure;
}

async function segments(main) {
  main.append(h("h1", {}, t("marketing.segments")));
  await ui.load(main, async () => {
    const [all, grid] = await Promise.all([api.get("/v1/segments"), api.get("/v1/segments/rfm-grid")]);
    const bySize = Object.fromEntries(all.map((s) => [s.segment_id, s.members]));
    const custom = all.filter((s) => !s.segment_id.startsWith("rfm:"));
    return h("div", {},
      h("section", { class: "card", "aria-labelledby": "grid-title" }, h("h2", { id: "grid-title" }, t("marketing.grid.heading")),
        rfmGrid(grid)),
      h("section", { class: "card", "aria-labelledby": "rfm-title" }, h("h2", { id: "rfm-title" }, t("marketing.segments.rfm")),
        ui.chart("bar", { labels: RFM.map((n) => t(`marketing.rfm.${n}`)),
          datasets: [{ label: t("marketing.segments.members"), data: RFM.map((n) => bySize[`rfm:${n}`] ?? 0) }] },
        { id: "rfm-segments", title: t("marketing.segments.rfm") })),
      rfmRules(),
      h("section", { class: "card", "aria-labelledby": "custom-title" }, h("h2", { id: "custom-title" }, t("marketing.segments.custom")),
        custom.length ? ui.table([
          { key: "segment_id", label: t("marketing.segments.id") }, { key: "name", label: t("marketing.segments.name") },
          { key: "members", label: t("marketing.segments.members"), num: true },
          { key: "rule", label: t("marketing.segments.rule"), render: (row) => h("code", {}, JSON.stringify(row.rule)) },
          { key: "updated_at", label: t("marketing.segments.updated"), render: (row) => formatDate(row.updated_at) }], custom)
          : h("p", { class: "muted" }, t("common.empty"))));
  });
}

// How risk is spread, from the churn API's aggregates (no customer named, so marketers read them too).
async function distribution() {
  const spread = await api.get("/v1/churn/distribution");
  const levels = spread.by_level;
  const money = (values) => Object.entries(values).map(([currency, v]) => formatMoney(v, currency)).join(" · ") || "—";
  return h("section", { class: "card", "aria-labelledby": "dist-title" }, h("h2", { id: "dist-title" }, t("marketing.churn.distribution")),
    h("p", { class: "muted" }, t("marketing.churn.scored_total", { n: formatNumber(spread.customers) })),
    h("div", { class: "grid" },
      ui.chart("bar", { labels: levels.map((l) => t(`marketing.churn.${l.level}`)),
        datasets: [{ label: t("marketing.segments.members"), data: levels.map((l) => l.customers) }] },
      { id: "churn-levels", title: t("marketing.churn.distribution") }),
      ui.chart("bar", { labels: spread.score_bins.map((b) => `${b.from.toFixed(1)}–${b.to.toFixed(1)}`),
        datasets: [{ label: t("marketing.segments.members"), data: spread.score_bins.map((b) => b.customers) }] },
      { id: "churn-scores", title: t("marketing.churn.scores") })),
    ui.table([{ key: "level", label: t("marketing.churn.level"), render: (r) => t(`marketing.churn.${r.level}`) },
      { key: "customers", label: t("marketing.segments.members"), num: true },
      { key: "value_at_risk", label: t("marketing.churn.value_at_risk"), render: (r) => money(r.value_at_risk) }], levels));
}

function reasons(row) {
  return h("ul", { class: "reasons" }, row.reasons.slice(0, 3).map((r) => h("li", {}, r.detail || r.factor,
    h("small", { class: "muted" }, ` (${formatNumber(r.contribution, { maximumFractionDigits: 2, signDisplay: "always" })})`))));
}

function atRisk() {
  const level = h("select", { id: "churn-level" }, h("option", { value: "" }, t("marketing.churn.any")),
                  LEVELS.map((l) => h("option", { value: l, selected: l === "high" }, t(`marketing.churn.${l}`))));
  const sort = h("select", { id: "churn-sort" }, ["value_at_risk", "score"].map((s) => h("option", { value: s },
    t(`marketing.churn.sort.${s}`))));
  const list = h("div", {});
  const draw = () => list.replaceChildren(ui.pager({
    load: (cursor) => api.get("/v1/churn/customers", { level: level.value, sort: sort.value, cursor, limit: 25 }),
    render: (items) => ui.table([
      { key: "customer_id", label: t("marketing.churn.customer"),
        render: (row) => h("a", { href: `#/customers/${encodeURIComponent(row.customer_id)}` }, row.customer_id) },
      { key: "level", label: t("marketing.churn.level"), render: (row) => ui.badge(t(`marketing.churn.${row.level}`), row.level) },
      { key: "score", label: t("marketing.churn.score"), num: true,
        render: (row) => formatNumber(row.score, { maximumFractionDigits: 2 }) },
      { key: "value_12m", label: t("marketing.churn.value_12m"), num: true,
        render: (row) => formatMoney(row.value_12m, row.currency || "CNY") },
      { key: "value_at_risk", label: t("marketing.churn.value_at_risk"), num: true,
        render: (row) => formatMoney(row.value_at_risk, row.currency || "CNY") },
      { key: "reasons", label: t("marketing.churn.reasons"), render: reasons },
      { key: "scored_at", label: t("marketing.churn.scored"), render: (row) => formatDate(row.scored_at) }], items),
  }));
  level.value = "high";
  level.addEventListener("change", draw);
  sort.addEventListener("change", draw);
  draw();
  return h("section", { class: "card", "aria-labelledby": "risk-title" }, h("h2", { id: "risk-title" }, t("marketing.churn.at_risk")),
    h("div", { class: "row" }, ui.field(t("marketing.churn.level"), level), ui.field(t("marketing.churn.sort"), sort)), list);
}

function model() {
  const card = h("section", { class: "card", "aria-labelledby": "model-title" }, h("h2", { id: "model-title" }, t("marketing.churn.model")));
  ui.load(card, async () => {
    const m = await api.get("/v1/churn/model");
    return h("dl", { class: "kv" }, h("dt", {}, t("marketing.churn.version")), h("dd", {}, m.version),
      h("dt", {}, t("marketing.churn.kind")), h("dd", {}, m.kind), h("dt", {}, t("marketing.churn.trained")),
      h("dd", {}, formatDate(m.trained_at)), h("dt", {}, t("marketing.churn.auc")),
      h("dd", {}, formatNumber(m.report?.holdout?.auc ?? null, { maximumFractionDigits: 3 })));
  });
  return card;
}

async function churn(main, params, ctx) {
  const spread = h("div", {});
  main.append(h("h1", {}, t("marketing.churn")), spread);
  await ui.load(spread, distribution);
  if (staff(ctx)) main.append(atRisk(), model());
  else main.append(h("p", { class: "card muted", role: "note" }, t("marketing.churn.role_note")));
}

export const routes = [
  { path: "/marketing/segments", nav: "marketing.segments", group: "marketing", roles: ["marketer", "supervisor"],
    render: segments },
  { path: "/marketing/churn", nav: "marketing.churn", group: "marketing", roles: ["marketer", "supervisor"], render: churn },
];
