// Call centre: the customer 360 on one screen. The gateway's GET /v1/customers/{id} brings the
// profile (masked), loyalty account, open tickets, churn risk and campaign contacts at once; a part
// that is unavailable or forbidden says so in its own card. The ledger and the timeline are read
// page by page; the actions (log the call, create a ticket, adjust points, record a CSAT answer)
// are in customer360-actions.js.
import { append, h, t, api, ui, formatDate, formatMoney, formatNumber } from "../lib/console.js";
import { actionCards, ledgerCard, revealDialog } from "./customer360-actions.js";

export const messages = {
  en: {
    "customers.360.title": "Customer {id}", "customers.360.back": "Back to the search",
    "customers.360.incomplete": "Some parts could not be loaded; what is shown is all the services answered in time.",
    "customers.part.unavailable": "Not available right now ({reason}).", "customers.part.forbidden": "Your role may not see this part.",
    "customers.part.not_found": "Nothing recorded.",
    "customers.profile": "Profile", "customers.profile.masked": "Personal data is masked.",
    "customers.profile.clear": "Shown in clear: this read is in the PII audit log.",
    "customers.profile.address": "Address", "customers.profile.registered": "Registered",
    "customers.profile.orders": "Paid orders", "customers.profile.spent": "Spent",
    "customers.profile.last_order": "Last order", "customers.profile.segment": "RFM segment",
    "customers.profile.consents": "Consents", "customers.profile.locale": "Language",
    "customers.reveal": "Reveal", "customers.reveal.not_allowed": "Revealing personal data needs the pii:read permission.",
    "customers.loyalty": "Loyalty", "customers.loyalty.tier": "Tier",
    "customers.loyalty.available": "Available points", "customers.loyalty.pending": "Pending points",
    "customers.loyalty.debt": "Debt", "customers.loyalty.lifetime": "Earned in total",
    "customers.loyalty.expiring": "Expiring in 30 days", "customers.loyalty.not_member": "Not a loyalty member yet.",
    "customers.churn": "Churn risk", "customers.churn.level": "Level", "customers.churn.score": "Probability",
    "customers.churn.value_at_risk": "Value at risk", "customers.churn.reasons": "Why",
    "customers.churn.scored": "Scored", "customers.churn.none": "Not scored yet.",
    "customers.tickets": "Open tickets", "customers.tickets.none": "No open tickets.",
    "customers.contacts": "Campaign contacts", "customers.contacts.campaign": "Campaign",
    "customers.contacts.channel": "Channel", "customers.contacts.status": "Status", "customers.contacts.at": "When",
    "customers.timeline": "Timeline", "customers.timeline.when": "When", "customers.timeline.what": "What",
    "customers.timeline.channel": "Channel", "customers.timeline.details": "Details", "customers.refresh": "Refresh",
    "customers.level.low": "low", "customers.level.medium": "medium", "customers.level.high": "high",
  },
  "zh-CN": {
    "customers.360.title": "客户 {id}", "customers.360.back": "返回查找",
    "customers.360.incomplete": "部分内容未能加载；这里显示的是各服务按时返回的内容。",
    "customers.part.unavailable": "暂时无法获取（{reason}）。", "customers.part.forbidden": "您的角色不能查看此部分。",
    "customers.part.not_found": "没有记录。",
    "customers.profile": "资料", "customers.profile.masked": "个人信息已遮蔽。",
    "customers.profile.clear": "明文显示：此次查看已记入个人信息审计日志。",
    "customers.profile.address": "地址", "customers.profile.registered": "注册时间",
    "customers.profile.orders": "已付款订单", "customers.profile.spent": "消费金额",
    "customers.profile.last_order": "最近订单", "customers.profile.segment": "RFM 分群",
    "customers.profile.consents": "营销许可", "customers.profile.locale": "语言",
    "customers.reveal": "显示明文", "customers.reveal.not_allowed": "显示个人信息明文需要 pii:read 权限。",
    "customers.loyalty": "会员积分", "customers.loyalty.tier": "等级",
    "customers.loyalty.available": "可用积分", "customers.loyalty.pending": "待生效积分",
    "customers.loyalty.debt": "欠分", "customers.loyalty.lifetime": "累计获得",
    "customers.loyalty.expiring": "30 天内到期", "customers.loyalty.not_member": "尚未成为会员。",
    "customers.churn": "流失风险", "customers.churn.level": "等级", "customers.churn.score": "概率",
    "customers.churn.value_at_risk": "风险价值", "customers.churn.reasons": "原因",
    "customers.churn.scored": "评分时间", "customers.churn.none": "尚未评分。",
    "customers.tickets": "未结工单", "customers.tickets.none": "没有未结工单。",
    "customers.contacts": "营销触达", "customers.contacts.campaign": "活动",
    "customers.contacts.channel": "渠道", "customers.contacts.status": "状态", "customers.contacts.at": "时间",
    "customers.timeline": "时间线", "customers.timeline.when": "时间", "customers.timeline.what": "事件",
    "customers.timeline.channel": "渠道", "customers.timeline.details": "详情", "customers.refresh": "刷新",
    "customers.level.low": "低", "customers.level.medium": "中", "customers.level.high": "高",
  },
};

const STAFF = ["agent", "supervisor"];

// A translated label when there is one, else the API's own word.
export function label(prefix, value) {
  const key = `${prefix}.${value}`;
  const text = t(key);
  return text === key ? String(value) : text;
}

export function kv(pairs) {
  return h("dl", { class: "kv" }, pairs.filter(([, v]) => v !== undefined).map(([k, v]) => [h("dt", {}, k),
    h("dd", {}, v === null || v === "" ? "—" : v)]));
}

export function card(title, ...children) {
  return h("section", { class: "card", "aria-label": title }, h("h2", {}, title), ...children);
}

// What a part of the 360 that has no data says instead.
function partNote(part, notFound) {
  if (part.status === "unavailable") {
    return h("p", { class: "problem", role: "alert", "data-part-status": "unavailable" },
             t("customers.part.unavailable", { reason: part.reason || "—" }));
  }
  if (part.status === "forbidden") return h("p", { class: "muted", "data-part-status": "forbidden" }, t("customers.part.forbidden"));
  return h("p", { class: "muted", "data-part-status": "not_found" }, notFound || t("customers.part.not_found"));
}

function money(amounts) {
  const entries = Object.entries(amounts || {});
  return entries.length ? entries.map(([currency, value]) => `${value} ${currency}`).join(", ") : "—";
}

export function profileFields(p) {
  const consents = Object.entries(p.consents || {}).filter(([, c]) => c && c.granted).map(([k]) => k).join(", ");
  return kv([[t("customers.name"), p.name], [t("customers.email"), p.email], [t("customers.phone"), p.phone],
    [t("customers.profile.address"), p.address], [t("customers.city"), p.city],
    [t("customers.profile.locale"), p.locale], [t("customers.profile.registered"), formatDate(p.registered_at, false)],
    [t("customers.profile.orders"), formatNumber(p.order_count)], [t("customers.profile.spent"), money(p.total_spent)],
    [t("customers.profile.last_order"), formatDate(p.last_order_at, false)],
    [t("customers.profile.segment"), p.rfm ? p.rfm.segment : null], [t("customers.profile.consents"), consents || null]]);
}

// Who may reveal, as the profile service decides it: supervisors, and agents whose session carries pii:read.
function mayReveal(identity) {
  return identity.role === "supervisor" || (identity.scopes || []).includes("pii:read");
}

function profileCard(id, part, ctx) {
  const body = h("div", {});
  const status = h("p", { class: "muted", "data-pii": "masked" }, t("customers.profile.masked"));
  const reveal = h("button", { type: "button", class: "secondary" }, t("customers.reveal"));
  const shown = h("div", {});
  if (part.status !== "ok") return card(t("customers.profile"), partNote(part));
  body.append(profileFields(part.data));
  reveal.addEventListener("click", async () => {
    const clear = await revealDialog(id, shown);
    if (!clear) return;
    body.replaceChildren(profileFields(clear));
    status.textContent = t("customers.profile.clear");
    status.dataset.pii = "clear";
    reveal.hidden = true;
  });
  return card(t("customers.profile"), status, body, mayReveal(ctx.identity) ? h("div", { class: "row" }, reveal)
    : h("p", { class: "muted" }, t("customers.reveal.not_allowed")), shown);
}

export function loyaltyFields(a) {
  return kv([[t("customers.loyalty.tier"), ui.badge(a.tier, "tier")],
    [t("customers.loyalty.available"), h("span", { "data-points": "available" }, formatNumber(a.available))],
    [t("customers.loyalty.pending"), h("span", { "data-points": "pending" }, formatNumber(a.pending))],
    [t("customers.loyalty.debt"), formatNumber(a.debt)], [t("customers.loyalty.lifetime"), formatNumber(a.lifetime_earned)],
    [t("customers.loyalty.expiring"), formatNumber(a.expiring_30d)]]);
}

function churnCard(part) {
  if (part.status !== "ok") return card(t("customers.churn"), partNote(part, t("customers.churn.none")));
  const c = part.data;
  return card(t("customers.churn"), kv([
    [t("customers.churn.level"), ui.badge(label("customers.level", c.level), c.level)],
    [t("customers.churn.score"), formatNumber(c.score, { style: "percent", maximumFractionDigits: 0 })],
    [t("customers.churn.value_at_risk"), c.currency ? formatMoney(c.value_at_risk, c.currency) : formatNumber(Number(c.value_at_risk))],
    [t("customers.churn.scored"), formatDate(c.scored_at)]]),
  h("h3", {}, t("customers.churn.reasons")),
  c.reasons.length ? h("ul", { class: "customers-reasons" }, c.reasons.map((r) => h("li", { "data-factor": r.factor },
    r.detail || r.factor))) : h("p", { class: "muted" }, t("common.none")));
}

function ticketLink(ticket) {
  return h("li", {}, h("a", { href: `#/tickets/${encodeURIComponent(ticket.ticket_id)}` }, ticket.ticket_id), " ",
           ticket.subject, " ", ui.badge(ticket.status, ticket.status), " ", ui.badge(ticket.priority, ticket.priority));
}

function ticketsCard(part) {
  const node = card(t("customers.tickets"));
  const list = h("ul", { class: "customers-tickets" });
  const none = h("p", { class: "muted" }, t("customers.tickets.none"));
  node.items = part.status === "ok" ? [...(part.data.items || [])] : [];
  append(list, node.items.map(ticketLink));
  none.hidden = node.items.length > 0 || part.status !== "ok";
  append(node, [part.status === "ok" ? null : partNote(part), none, list]);
  // A ticket created from this call joins the list.
  node.addTicket = (ticket) => { node.items.push(ticket); none.hidden = true; list.append(ticketLink(ticket)); };
  return node;
}

function contactsCard(part) {
  if (part.status !== "ok") return card(t("customers.contacts"), partNote(part));
  const items = part.data.items || [];
  return card(t("customers.contacts"), items.length ? ui.table([
    { key: "campaign_name", label: t("customers.contacts.campaign") }, { key: "channel", label: t("customers.contacts.channel") },
    { key: "status", label: t("customers.contacts.status") },
    { key: "contacted_at", label: t("customers.contacts.at"), render: (r) => formatDate(r.contacted_at) }], items)
    : h("p", { class: "muted" }, t("customers.part.not_found")));
}

function detailsText(details) {
  return Object.entries(details || {}).filter(([, v]) => v !== null && typeof v !== "object")
    .map(([k, v]) => `${k}: ${v}`).join(" · ");
}

// The timeline, page by page; reload() starts again from the newest.
export function timelineCard(id) {
  const holder = h("div", {});
  const reload = () => holder.replaceChildren(ui.pager({
    load: (cursor) => api.get(`/v1/profiles/${encodeURIComponent(id)}/timeline`, { cursor, limit: 20 }),
    render: (items) => ui.table([
      { key: "occurred_at", label: t("customers.timeline.when"), render: (r) => formatDate(r.occurred_at) },
      { key: "kind", label: t("customers.timeline.what"), render: (r) => h("span", { "data-event-id": r.event_id },
        label("customers.kind", r.kind)) },
      { key: "channel", label: t("customers.timeline.channel") },
      { key: "details", label: t("customers.timeline.details"), render: (r) => detailsText(r.details) }], items),
  }));
  reload();
  const node = card(t("customers.timeline"), h("div", { class: "row" }, h("button", { type: "button", class: "secondary",
    onclick: reload }, t("customers.refresh"))), holder);
  node.classList.add("customers-wide");
  node.reload = reload;
  return node;
}

async function render360(main, { customer_id: id }, ctx) {
  main.append(h("p", {}, h("a", { href: "#/customers" }, t("customers.360.back"))),
              h("h1", {}, t("customers.360.title", { id })));
  await ui.load(main, async () => {
    const doc = await api.get(`/v1/customers/${encodeURIComponent(id)}`);
    const timeline = timelineCard(id);
    const ledger = ledgerCard(id, doc.loyalty);
    const tickets = ticketsCard(doc.open_tickets);
    const parts = { doc, timeline, ledger, tickets };
    const loyaltyBody = h("div", {}, doc.loyalty.status === "ok" ? loyaltyFields(doc.loyalty.data)
      : partNote(doc.loyalty, t("customers.loyalty.not_member")));
    parts.loyaltyBody = loyaltyBody;
    return h("div", {}, doc.complete ? null : h("p", { class: "problem", role: "alert" }, t("customers.360.incomplete")),
      h("div", { class: "grid customers-360" },
        profileCard(id, doc.profile, ctx), card(t("customers.loyalty"), loyaltyBody), churnCard(doc.churn), tickets,
        contactsCard(doc.campaign_contacts), ...actionCards(id, parts, ctx), ledger, timeline));
  });
}

export const routes = [
  { path: "/customers/:customer_id", roles: STAFF, render: render360 },
];
