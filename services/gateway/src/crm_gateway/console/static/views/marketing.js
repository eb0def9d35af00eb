// Marketing: the campaign list and a campaign's results (messages by stage, contacts by group, the
// lift with its confidence interval), with the lifecycle buttons the role may press. Ids and counts
// only: the campaigns API holds no personal data.
import { h, t, api, ui, clear, formatDate, formatMoney, formatNumber } from "../lib/console.js";

const MARKETING = ["marketer", "supervisor"];
const STATUSES = ["draft", "awaiting_approval", "active", "paused", "completed"];
const STAGES = ["sent", "delivered", "opened", "clicked", "unsubscribed", "bounced", "failed", "suppressed"];

export const messages = {
  en: {
    "marketing.campaigns": "Campaigns", "marketing.campaigns.new": "New campaign", "marketing.campaigns.status": "Status",
    "marketing.campaigns.all": "All", "marketing.campaigns.filter": "Show",
    "marketing.col.name": "Name", "marketing.col.kind": "Kind", "marketing.col.status": "Status",
    "marketing.col.size": "Estimated size", "marketing.col.created": "Created", "marketing.col.by": "By",
    "marketing.status.draft": "Draft", "marketing.status.awaiting_approval": "Awaiting approval",
    "marketing.status.active": "Active", "marketing.status.paused": "Paused", "marketing.status.completed": "Completed",
    "marketing.results": "Results", "marketing.results.refresh": "Refresh", "marketing.results.messages": "Messages",
    "marketing.results.funnel": "Messages by stage", "marketing.results.contacts": "Contacts",
    "marketing.results.conversion": "Conversion rate by group (%)", "marketing.results.rate": "Conversion rate (%)",
    "marketing.results.lift": "Lift", "marketing.results.lift_value": "{difference} percentage points (95% CI {low} to {high})",
    "marketing.results.relative": "Relative lift", "marketing.results.significant": "Significant",
    "marketing.results.not_significant": "Not significant", "marketing.results.no_lift": "Not measurable yet (no control group or no contacts).",
    "marketing.results.revenue": "Revenue per customer, difference", "marketing.results.revenue_value": "{difference} (95% CI {low} to {high})",
    "marketing.results.window": "An order paid within {days} days of the contact converts it.",
    "marketing.results.coupons": "Coupons issued / redeemed", "marketing.results.points": "Points granted",
    "marketing.results.awaiting": "This campaign waits for a supervisor's approval before anything is sent.",
    "marketing.group.treatment": "Treatment", "marketing.group.control": "Control", "marketing.group.holdout": "Holdout",
    "marketing.group.pending": "Pending", "marketing.group.skipped": "Skipped ({reason})",
    "marketing.group.customers": "Customers", "marketing.group.converted": "Converted",
    "marketing.stage.sent": "Sent", "marketing.stage.delivered": "Delivered", "marketing.stage.opened": "Opened",
    "marketing.stage.clicked": "Clicked", "marketing.stage.unsubscribed": "Unsubscribed", "marketing.stage.bounced": "Bounced",
    "marketing.stage.failed": "Failed", "marketing.stage.suppressed": "Suppressed",
    "marketing.action.pause": "Pause", "marketing.action.resume": "Resume", "marketing.action.approve": "Approve",
    "marketing.action.done": "Campaign {id}: {status}",
    "marketing.col.message": "Message", "marketing.col.customer": "Customer id", "marketing.col.channel": "Channel",
    "marketing.col.locale": "Language", "marketing.col.sent_at": "Sent",
    "marketing.rfm.champions": "Champions", "marketing.rfm.loyal": "Loyal", "marketing.rfm.potential": "Potential",
    "marketing.rfm.new": "New", "marketing.rfm.at_risk": "At risk", "marketing.rfm.cannot_lose": "Cannot lose",
    "marketing.rfm.hibernating": "Hibernating", "marketing.rfm.lost": "Lost",
    "marketing.churn.low": "Low", "marketing.churn.medium": "Medium", "marketing.churn.high": "High",
  },
  "zh-CN": {
    "marketing.campaigns": "营销活动", "marketing.campaigns.new": "新建活动", "marketing.campaigns.status": "状态",
    "marketing.campaigns.all": "全部", "marketing.campaigns.filter": "显示",
    "marketing.col.name": "名称", "marketing.col.kind": "类型", "marketing.col.status": "状态",
    "marketing.col.size": "预估人数", "marketing.col.created": "创建时间", "marketing.col.by": "创建人",
    "marketing.status.draft": "草稿", "marketing.status.awaiting_approval": "等待审批",
    "marketing.status.active": "进行中", "marketing.status.paused": "已暂停", "marketing.status.completed": "已完成",
    "marketing.results": "结果", "marketing.results.refresh": "刷新", "marketing.results.messages": "消息",
    "marketing.results.funnel": "各阶段消息数", "marketing.results.contacts": "触达",
    "marketing.results.conversion": "各组转化率（%）", "marketing.results.rate": "转化率（%）",
    "marketing.results.lift": "提升", "marketing.results.lift_value": "{difference} 个百分点（95% 置信区间 {low} 至 {high}）",
    "marketing.results.relative": "相对提升", "marketing.results.significant": "显著",
    "marketing.results.not_significant": "不显著", "marketing.results.no_lift": "暂无法衡量（没有对照组或没有触达）。",
    "marketing.results.revenue": "人均收入差", "marketing.results.revenue_value": "{difference}（95% 置信区间 {low} 至 {high}）",
    "marketing.results.window": "触达后 {days} 天内支付的订单计为转化。",
    "marketing.results.coupons": "发放 / 使用的优惠券", "marketing.results.points": "赠送积分",
    "marketing.results.awaiting": "该活动等待主管审批，审批前不会发送任何消息。",
    "marketing.group.treatment": "实验组", "marketing.group.control": "对照组", "marketing.group.holdout": "全局保留组",
    "marketing.group.pending": "待处理", "marketing.group.skipped": "跳过（{reason}）",
    "marketing.group.customers": "客户数", "marketing.group.converted": "已转化",
    "marketing.stage.sent": "已发送", "marketing.stage.delivered": "已送达", "marketing.stage.opened": "已打开",
    "marketing.stage.clicked": "已点击", "marketing.stage.unsubscribed": "已退订", "marketing.stage.bounced": "退信",
    "marketing.stage.failed": "失败", "marketing.stage.suppressed": "已屏蔽",
    "marketing.action.pause": "暂停", "marketing.action.resume": "恢复", "marketing.action.approve": "批准",
    "marketing.action.done": "活动 {id}：{status}",
    "marketing.col.message": "消息", "marketing.col.customer": "客户 ID", "marketing.col.channel": "渠道",
    "marketing.col.locale": "语言", "marketing.col.sent_at": "发送时间",
    "marketing.rfm.champions": "冠军客户", "marketing.rfm.loyal": "忠诚客户", "marketing.rfm.potential": "潜力客户",
    "marketing.rfm.new": "新客户", "marketing.rfm.at_risk": "流失风险", "marketing.rfm.cannot_lose": "不能失去",
    "marketing.rfm.hibernating": "休眠客户", "marketing.rfm.lost": "已流失",
    "marketing.churn.low": "低", "marketing.churn.medium": "中", "marketing.churn.high": "高",
  },
};

const LIST_LIMIT = 25;
const statusBadge = (status) => ui.badge(t(`marketing.status.${status}`),
  { active: "ok", completed: "ok", awaiting_approval: "warning", paused: "warning" }[status] || "");
const percent = (rate) => (rate === null || rate === undefined ? null : Math.round(rate * 10000) / 100);
const signed = (value, digits = 2) => (value === null || value === undefined ? "—"
  : `${value > 0 ? "+" : ""}${formatNumber(value, { maximumFractionDigits: digits })}`);

async function campaignList(main) {
  const filter = h("select", { id: "campaign-status" }, h("option", { value: "" }, t("marketing.campaigns.all")),
                   STATUSES.map((s) => h("option", { value: s }, t(`marketing.status.${s}`))));
  const results = h("div", {});
  const draw = () => results.replaceChildren(ui.pager({
    // Newest first, a page at a time with the API's cursor.
    load: (cursor) => api.get("/v1/campaigns", { status: filter.value, limit: LIST_LIMIT, cursor }),
    render: (items) => ui.table([
      { key: "name", label: t("marketing.col.name"),
        render: (row) => h("a", { href: `#/campaigns/${encodeURIComponent(row.campaign_id)}` }, row.name) },
      { key: "kind", label: t("marketing.col.kind"), render: (row) => t(`marketing.kind.${row.kind}`) },
      { key: "status", label: t("marketing.col.status"), render: (row) => statusBadge(row.status) },
      { key: "estimated_size", label: t("marketing.col.size"), num: true },
      { key: "created_at", label: t("marketing.col.created"), render: (row) => formatDate(row.created_at) },
      { key: "created_by", label: t("marketing.col.by") }], items, { caption: t("marketing.campaigns") }),
  }));
  filter.addEventListener("change", draw);
  main.append(h("div", { class: "row heading" }, h("h1", {}, t("marketing.campaigns")),
    h("a", { class: "button", href: "#/campaigns/new" }, t("marketing.campaigns.new"))),
  h("div", { class: "card" }, ui.field(t("marketing.campaigns.filter"), filter),
    results));
  draw();
}

function liftBlock(lift, conversionDays) {
  const rows = [];
  if (lift.difference === null || lift.difference_interval === null) {
    rows.push(h("dt", {}, t("marketing.results.lift")), h("dd", {}, t("marketing.results.no_lift")));
  } else {
    const [low, high] = lift.difference_interval.map((v) => signed(v * 100));
    rows.push(h("dt", {}, t("marketing.results.lift")), h("dd", { "data-lift": lift.difference },
      t("marketing.results.lift_value", { difference: signed(lift.difference * 100), low, high }), " ",
      ui.badge(t(lift.significant ? "marketing.results.significant" : "marketing.results.not_significant"),
               lift.significant ? "ok" : "")));
    rows.push(h("dt", {}, t("marketing.results.relative")),
              h("dd", {}, lift.relative_lift === null ? "—" : `${signed(lift.relative_lift * 100, 1)} %`));
  }
  if (lift.revenue_difference !== null && lift.revenue_interval !== null) {
    const [low, high] = lift.revenue_interval.map((v) => formatMoney(v, lift.currency));
    rows.push(h("dt", {}, t("marketing.results.revenue")), h("dd", {}, t("marketing.results.revenue_value", {
      difference: formatMoney(lift.revenue_difference, lift.currency), low, high })));
  }
  return h("section", { class: "card", "aria-labelledby": "lift-title" }, h("h2", { id: "lift-title" }, t("marketing.results.lift")),
    h("dl", { class: "kv" }, rows), h("p", { class: "muted" }, t("marketing.results.window", { days: conversionDays })),
    ui.table([{ key: "group", label: "" }, { key: "customers", label: t("marketing.group.customers"), num: true },
              { key: "converted", label: t("marketing.group.converted"), num: true },
              { key: "rate", label: t("marketing.results.rate"), num: true }],
    [{ group: t("marketing.group.treatment"), ...lift.treatment, rate: percent(lift.treatment_rate) },
     { group: t("marketing.group.control"), ...lift.control, rate: percent(lift.control_rate) }]),
    ui.chart("bar", { labels: [t("marketing.group.treatment"), t("marketing.group.control")],
      datasets: [{ label: t("marketing.results.rate"), data: [percent(lift.treatment_rate) ?? 0, percent(lift.control_rate) ?? 0] }] },
    { id: "campaign-conversion", title: t("marketing.results.conversion") }));
}

function actionsFor(campaign, role, rerender) {
  const act = (action) => h("button", { type: "button", class: action === "approve" ? null : "secondary", onclick: async (event) => {
    event.currentTarget.disabled = true;
    try {
      const changed = await api.post(`/v1/campaigns/${encodeURIComponent(campaign.campaign_id)}/${action}`, {});
      ui.toast(t("marketing.action.done", { id: changed.campaign_id, status: t(`marketing.status.${changed.status}`) }));
      rerender();
    } catch (error) {
      event.target.after(ui.problem(error));
      event.target.disabled = false;
    }
  } }, t(`marketing.action.${action}`));
  const buttons = [];
  if (["active", "awaiting_approval"].includes(campaign.status)) buttons.push(act("pause"));
  if (campaign.status === "paused") buttons.push(act("resume"));
  if (campaign.status === "awaiting_approval" && role === "supervisor") buttons.push(act("approve"));
  return buttons;
}

async function results(main, { campaign_id: id }, ctx) {
  const rerender = () => { clear(main); results(main, { campaign_id: id }, ctx); };
  await ui.load(main, async () => {
    const path = `/v1/campaigns/${encodeURIComponent(id)}`;
    const [campaign, answer] = await Promise.all([api.get(path), api.get(`${path}/results`)]);
    const m = answer.messages;
    const c = answer.contacts;
    const contactRows = [["treatment", c.treatment], ["control", c.control], ["holdout", c.holdout], ["pending", c.pending],
      ...Object.entries(c.skipped).map(([reason, n]) => [`skipped:${reason}`, n])];
    return h("div", {},
      h("div", { class: "row heading" }, h("h1", {}, campaign.name), statusBadge(campaign.status),
        h("button", { type: "button", class: "secondary", onclick: rerender }, t("marketing.results.refresh")),
        actionsFor(campaign, ctx.identity.role, rerender)),
      campaign.status === "awaiting_approval" ? h("p", { class: "notice", role: "status" }, t("marketing.results.awaiting")) : null,
      h("div", { class: "grid" },
        h("section", { class: "card", "aria-labelledby": "messages-title" }, h("h2", { id: "messages-title" }, t("marketing.results.messages")),
          h("dl", { class: "kv counts" }, STAGES.map((s) => [h("dt", {}, t(`marketing.stage.${s}`)),
            h("dd", { class: "num", "data-count": s }, formatNumber(m[s]))])),
          ui.chart("bar", { labels: STAGES.slice(0, 5).map((s) => t(`marketing.stage.${s}`)),
            datasets: [{ label: t("marketing.results.messages"), data: STAGES.slice(0, 5).map((s) => m[s]) }] },
          { id: "campaign-messages", title: t("marketing.results.funnel") })),
        h("section", { class: "card", "aria-labelledby": "contacts-title" }, h("h2", { id: "contacts-title" }, t("marketing.results.contacts")),
          h("dl", { class: "kv counts" }, contactRows.map(([key, n]) => [h("dt", {}, key.startsWith("skipped:")
            ? t("marketing.group.skipped", { reason: key.slice(8) }) : t(`marketing.group.${key}`)),
          h("dd", { class: "num", "data-contacts": key }, formatNumber(n))]),
          h("dt", {}, t("marketing.results.coupons")), h("dd", { class: "num" },
            `${formatNumber(answer.coupons.issued)} / ${formatNumber(answer.coupons.redeemed)}`),
          h("dt", {}, t("marketing.results.points")), h("dd", { class: "num" }, formatNumber(answer.points_granted))))),
      liftBlock(answer.lift, answer.conversion_days),
      h("section", { class: "card", "aria-labelledby": "list-title" }, h("h2", { id: "list-title" }, t("marketing.results.messages")),
        ui.pager({
          load: (cursor) => api.get(`${path}/messages`, { cursor, limit: 50 }),
          render: (items) => ui.table([
            { key: "message_id", label: t("marketing.col.message") }, { key: "customer_id", label: t("marketing.col.customer") },
            { key: "channel", label: t("marketing.col.channel") }, { key: "locale", label: t("marketing.col.locale") },
            { key: "status", label: t("marketing.col.status"), render: (row) => ui.badge(row.status) },
            { key: "sent_at", label: t("marketing.col.sent_at"), render: (row) => formatDate(row.sent_at) }], items),
        })));
  });
}

export const routes = [
  { path: "/campaigns", nav: "marketing.campaigns", group: "marketing", roles: MARKETING, render: (main) => campaignList(main) },
  { path: "/campaigns/:campaign_id", roles: MARKETING, render: (main, params, ctx) => results(main, params, ctx) },
];
