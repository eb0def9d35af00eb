// Call centre: what the agent does on the customer 360 while the customer is on the line — reveal
// the PII (with a reason, audited by the profile service), log the call, open a ticket from it,
// adjust points within the role's limit, record the CSAT answer given on the phone — and the
// points ledger. No routes of its own: customer360.js places these cards.
import { append, clear, h, t, api, ui, formatDate, formatNumber } from "../lib/console.js";
import { card, loyaltyFields } from "./customer360.js";

export const messages = {
  en: {
    "customers.reveal.title": "Reveal personal data", "customers.reveal.why": "Why do you need it?",
    "customers.reveal.details": "Details (optional, Latin letters and digits)",
    "customers.reveal.confirm": "Reveal", "customers.reveal.ascii": "Please write the details in Latin letters and digits.",
    "customers.reason.identity": "identity check on a call", "customers.reason.delivery": "delivery or address problem",
    "customers.reason.ticket": "ticket follow-up", "customers.reason.request": "customer asked for their data",
    "customers.ledger": "Points ledger", "customers.ledger.when": "When", "customers.ledger.kind": "Kind",
    "customers.ledger.points": "Points", "customers.ledger.reason": "Reason", "customers.ledger.by": "By",
    "customers.ledger.cause": "Order / ticket",
    "customers.call": "Log the call", "customers.call.kind": "Kind", "customers.call.kind.call": "Phone call",
    "customers.call.kind.chat": "Chat", "customers.call.direction": "Direction",
    "customers.call.direction.inbound": "Inbound", "customers.call.direction.outbound": "Outbound",
    "customers.call.minutes": "Duration (minutes)", "customers.call.ticket": "About ticket",
    "customers.call.no_ticket": "(none)", "customers.call.submit": "Log the call",
    "customers.call.logged": "Call logged; it is on the timeline.",
    "customers.call.pending": "Call logged; the timeline shows it in a moment.",
    "customers.ticket": "Create a ticket from the call", "customers.ticket.kind": "Kind",
    "customers.ticket.subject": "Subject", "customers.ticket.description": "Description",
    "customers.ticket.submit": "Create ticket", "customers.ticket.created": "Ticket {id} created.",
    "customers.adjust": "Adjust points", "customers.adjust.points": "Points (negative to deduct)",
    "customers.adjust.reason": "Reason", "customers.adjust.ticket": "Ticket (optional)",
    "customers.adjust.submit": "Adjust", "customers.adjust.limit": "Your limit: {limit} points per adjustment.",
    "customers.adjust.period": "Agents: at most {limit} points per {hours} hours.",
    "customers.adjust.done": "Adjusted by {points}; available now {available}.",
    "customers.adjust.ask": "Ask a supervisor to approve",
    "customers.adjust.asked": "Request {id} for {points} points is waiting for a supervisor's approval.",
    "customers.csat": "Record a phone CSAT answer", "customers.csat.help": "The customer's resolved tickets:",
    "customers.csat.ticket": "Ticket", "customers.csat.subject": "Subject", "customers.csat.resolved": "Resolved",
    "customers.csat.record": "Record answer", "customers.csat.title": "CSAT answer for {id}",
    "customers.csat.score": "Score (1–5)", "customers.csat.comment": "Comment (optional)",
    "customers.csat.done": "Recorded: {score}/5", "customers.csat.none": "No resolved tickets.",
    "customers.kind.complaint": "Complaint", "customers.kind.after_sales_repair": "Repair",
    "customers.kind.after_sales_exchange": "Exchange", "customers.kind.return": "Return",
    "customers.kind.enquiry": "Enquiry", "customers.kind.follow_up": "Follow-up",
    "customers.kind.interaction.call": "Phone call", "customers.kind.interaction.chat": "Chat",
    "customers.kind.order.paid": "Order paid", "customers.kind.order.placed": "Order placed",
    "customers.kind.order.completed": "Order completed", "customers.kind.order.refunded": "Order refunded",
    "customers.kind.order.cancelled": "Order cancelled", "customers.kind.tickets.csat.submitted": "CSAT answer",
    "customers.kind.loyalty.points.earned": "Points earned", "customers.kind.loyalty.tier_changed": "Tier changed",
    "customers.kind.churn.risk_changed": "Churn risk changed", "customers.kind.tickets.ticket.opened": "Ticket opened",
    "customers.kind.tickets.ticket.resolved": "Ticket resolved", "customers.kind.tickets.ticket.closed": "Ticket closed",
    "customers.kind.tickets.ticket.reopened": "Ticket reopened", "customers.kind.earn": "Earned",
    "customers.kind.release": "Released", "customers.kind.redeem": "Redeemed",
    "customers.kind.reverse": "Reversed", "customers.kind.expire": "Expired", "customers.kind.adjust": "Adjustment",
    "customers.kind.bonus": "Bonus",
  },
  "zh-CN": {
    "customers.reveal.title": "显示个人信息明文", "customers.reveal.why": "查看原因",
    "customers.reveal.details": "补充说明（可选，请用拉丁字母和数字）",
    "customers.reveal.confirm": "显示明文", "customers.reveal.ascii": "补充说明请使用拉丁字母和数字。",
    "customers.reason.identity": "来电身份核实", "customers.reason.delivery": "配送或地址问题",
    "customers.reason.ticket": "工单跟进", "customers.reason.request": "客户要求查询本人信息",
    "customers.ledger": "积分明细", "customers.ledger.when": "时间", "customers.ledger.kind": "类型",
    "customers.ledger.points": "积分", "customers.ledger.reason": "原因", "customers.ledger.by": "操作人",
    "customers.ledger.cause": "订单 / 工单",
    "customers.call": "记录通话", "customers.call.kind": "类型", "customers.call.kind.call": "电话",
    "customers.call.kind.chat": "在线聊天", "customers.call.direction": "方向",
    "customers.call.direction.inbound": "呼入", "customers.call.direction.outbound": "呼出",
    "customers.call.minutes": "时长（分钟）", "customers.call.ticket": "相关工单",
    "customers.call.no_ticket": "（无）", "customers.call.submit": "记录通话",
    "customers.call.logged": "通话已记录，已显示在时间线上。",
    "customers.call.pending": "通话已记录，稍后显示在时间线上。",
    "customers.ticket": "根据通话创建工单", "customers.ticket.kind": "类型",
    "customers.ticket.subject": "主题", "customers.ticket.description": "描述",
    "customers.ticket.submit": "创建工单", "customers.ticket.created": "已创建工单 {id}。",
    "customers.adjust": "调整积分", "customers.adjust.points": "积分（负数为扣减）",
    "customers.adjust.reason": "原因", "customers.adjust.ticket": "工单（可选）",
    "customers.adjust.submit": "调整", "customers.adjust.limit": "您的权限：每次最多 {limit} 积分。",
    "customers.adjust.period": "客服：每 {hours} 小时最多 {limit} 积分。",
    "customers.adjust.done": "已调整 {points}；当前可用 {available}。",
    "customers.adjust.ask": "提交主管审批",
    "customers.adjust.asked": "申请 {id}（{points} 积分）正在等待主管审批。",
    "customers.csat": "记录电话满意度回答", "customers.csat.help": "客户已解决的工单：",
    "customers.csat.ticket": "工单", "customers.csat.subject": "主题", "customers.csat.resolved": "解决时间",
    "customers.csat.record": "记录回答", "customers.csat.title": "工单 {id} 的满意度",
    "customers.csat.score": "评分（1–5）", "customers.csat.comment": "备注（可选）",
    "customers.csat.done": "已记录：{score}/5", "customers.csat.none": "没有已解决的工单。",
    "customers.kind.complaint": "投诉", "customers.kind.after_sales_repair": "维修",
    "customers.kind.after_sales_exchange": "换货", "customers.kind.return": "退货",
    "customers.kind.enquiry": "咨询", "customers.kind.follow_up": "跟进",
    "customers.kind.interaction.call": "电话", "customers.kind.interaction.chat": "在线聊天",
    "customers.kind.order.paid": "订单已付款", "customers.kind.order.placed": "已下单",
    "customers.kind.order.completed": "订单已完成", "customers.kind.order.refunded": "订单已退款",
    "customers.kind.order.cancelled": "订单已取消", "customers.kind.tickets.csat.submitted": "满意度回答",
    "customers.kind.loyalty.points.earned": "获得积分", "customers.kind.loyalty.tier_changed": "等级变更",
    "customers.kind.churn.risk_changed": "流失风险变化", "customers.kind.tickets.ticket.opened": "工单已创建",
    "customers.kind.tickets.ticket.resolved": "工单已解决", "customers.kind.tickets.ticket.closed": "工单已关闭",
    "customers.kind.tickets.ticket.reopened": "工单已重开", "customers.kind.earn": "获得积分",
    "customers.kind.release": "积分生效", "customers.kind.redeem": "兑换",
    "customers.kind.reverse": "冲回", "customers.kind.expire": "过期", "customers.kind.adjust": "人工调整",
    "customers.kind.bonus": "奖励积分",
  },
};

const REASONS = ["identity", "delivery", "ticket", "request"];
const TICKET_KINDS = ["enquiry", "complaint", "return", "after_sales_repair", "after_sales_exchange", "follow_up"];
const PRINTABLE_ASCII = /^[\x20-\x7E]*$/;  // an HTTP header carries Latin-1 only: the reason travels in one
const path = (id, sub = "") => `/v1/loyalty/accounts/${encodeURIComponent(id)}${sub}`;

function labelOf(prefix, value) {
  const key = `${prefix}.${value}`;
  return t(key) === key ? String(value) : t(key);
}

function select(name, values, prefix, extra) {
  return h("select", { name }, extra || null, values.map((v) => h("option", { value: v }, labelOf(prefix, v))));
}

// Asks why, then reads the profile in clear (GET ?reveal=true with X-Access-Reason). The reason
// sent is the standard one in English (the audit log's language) plus the agent's details.
export async function revealDialog(id, status) {
  const why = h("select", { name: "reason" }, REASONS.map((r) => h("option", {
    value: messages.en[`customers.reason.${r}`] }, t(`customers.reason.${r}`))));
  const details = h("input", { name: "details", maxlength: 150, autocomplete: "off" });
  const body = h("div", {}, ui.field(t("customers.reveal.why"), why), ui.field(t("customers.reveal.details"), details));
  const pressed = await ui.dialog(t("customers.reveal.title"), body, [
    { label: t("common.cancel"), value: null, secondary: true }, { label: t("customers.reveal.confirm"), value: "reveal" }]);
  status.replaceChildren();
  if (pressed !== "reveal") return null;
  const extra = details.value.trim();
  if (!PRINTABLE_ASCII.test(extra)) {
    status.append(h("p", { class: "problem", role: "alert" }, t("customers.reveal.ascii")));
    return null;
  }
  try {
    return await api.get(`/v1/profiles/${encodeURIComponent(id)}`, { reveal: "true" },
                         { headers: { "X-Access-Reason": extra ? `${why.value}: ${extra}` : why.value } });
  } catch (error) {
    status.append(ui.problem(error));
    return null;
  }
}

// The points ledger, newest first, page by page; reload() after an adjustment.
export function ledgerCard(id) {
  const holder = h("div", {});
  const reload = () => holder.replaceChildren(ui.pager({
    load: (cursor) => api.get(path(id, "/ledger"), { cursor, limit: 10 }),
    render: (items) => ui.table([
      { key: "business_at", label: t("customers.ledger.when"), render: (r) => formatDate(r.business_at) },
      { key: "kind", label: t("customers.ledger.kind"), render: (r) => labelOf("customers.kind", r.kind) },
      { key: "points", label: t("customers.ledger.points"), num: true,
        render: (r) => h("span", { "data-entry-id": r.entry_id }, `${r.points > 0 ? "+" : ""}${formatNumber(r.points)}`) },
      { key: "reason", label: t("customers.ledger.reason") }, { key: "actor", label: t("customers.ledger.by") },
      { key: "order_id", label: t("customers.ledger.cause"), render: (r) => r.order_id || r.ticket_id || "—" }], items),
  }));
  reload();
  const node = card(t("customers.ledger"), holder);
  node.classList.add("customers-wide");
  node.reload = reload;
  return node;
}

function ticketOptions(tickets) {
  return [h("option", { value: "" }, t("customers.call.no_ticket")),
    tickets.items.map((k) => h("option", { value: k.ticket_id }, `${k.ticket_id} · ${k.subject}`))];
}

// Waits (a second at a time, up to 20 s) for the event to reach the profile's timeline.
async function untilOnTimeline(id, eventId) {
  for (let attempt = 0; attempt < 20; attempt += 1) {
    const page = await api.get(`/v1/profiles/${encodeURIComponent(id)}/timeline`, { kind: "interaction", limit: 20 });
    if (page.items.some((e) => e.event_id === eventId)) return true;
    await new Promise((resolve) => setTimeout(resolve, 1000));
  }
  return false;
}

function logCallCard(id, parts) {
  const ticket = h("select", { name: "ticket_id" }, ticketOptions(parts.tickets));
  const minutes = h("input", { name: "minutes", type: "number", min: 0, max: 1440, value: "5" });
  const done = h("p", { class: "muted", role: "status" });
  parts.refreshTicketOptions = () => append(clear(ticket), ticketOptions(parts.tickets));
  return card(t("customers.call"), ui.form({
    fields: [h("div", { class: "row" }, ui.field(t("customers.call.kind"), select("kind", ["call", "chat"], "customers.call.kind")),
      ui.field(t("customers.call.direction"), select("direction", ["inbound", "outbound"], "customers.call.direction")),
      ui.field(t("customers.call.minutes"), minutes)), ui.field(t("customers.call.ticket"), ticket)],
    submitLabel: t("customers.call.submit"),
    onsubmit: async (data) => {
      done.textContent = "";
      const seconds = Math.round(Number(data.get("minutes") || 0) * 60);
      const recorded = await api.post(`/v1/customers/${encodeURIComponent(id)}/interactions`, {
        kind: data.get("kind"), direction: data.get("direction"), duration_s: seconds,
        occurred_at: new Date(Date.now() - seconds * 1000).toISOString(), ticket_id: data.get("ticket_id") || null });
      done.textContent = t("customers.call.pending");
      if (await untilOnTimeline(id, recorded.event_id)) {
        parts.timeline.reload();
        done.textContent = t("customers.call.logged");
      }
    },
  }), done);
}

function ticketCard(id, parts) {
  const created = h("div", { role: "status" });
  return card(t("customers.ticket"), ui.form({
    fields: [ui.field(t("customers.ticket.kind"), select("kind", TICKET_KINDS, "customers.kind")),
      ui.field(t("customers.ticket.subject"), h("input", { name: "subject", required: true, maxlength: 200 })),
      ui.field(t("customers.ticket.description"), h("textarea", { name: "description", maxlength: 20000 }))],
    submitLabel: t("customers.ticket.submit"),
    onsubmit: async (data, form) => {
      created.replaceChildren();
      const ticket = await api.post("/v1/tickets", { customer_id: id, kind: data.get("kind"), channel: "phone",
        subject: data.get("subject"), description: data.get("description") || "" });
      created.append(h("p", {}, h("a", { href: `#/tickets/${encodeURIComponent(ticket.ticket_id)}` },
                                  t("customers.ticket.created", { id: ticket.ticket_id }))));
      parts.tickets.addTicket(ticket);
      parts.refreshTicketOptions?.();
      form.reset();
    },
  }), created);
}

function adjustCard(id, parts, ctx) {
  const hint = h("p", { class: "muted" });
  const done = h("p", { role: "status" });
  const ask = h("button", { type: "button", class: "secondary", hidden: true }, t("customers.adjust.ask"));
  let refused = null;  // the adjustment the API refused as over this agent's limit: a supervisor may make it
  api.get("/v1/loyalty/programme").then((programme) => {
    const rules = programme.config.adjustments;
    const supervisor = ctx.identity.role === "supervisor";
    hint.replaceChildren(t("customers.adjust.limit", { limit: formatNumber(supervisor ? rules.supervisor_limit : rules.agent_limit) }),
      !supervisor && rules.agent_period_limit ? ` ${t("customers.adjust.period", {
        limit: formatNumber(rules.agent_period_limit), hours: rules.agent_period_hours })}` : "");
  }).catch(() => hint.remove());  // the limit is a hint: the API enforces it and says so
  const form = ui.form({
    fields: [ui.field(t("customers.adjust.points"), h("input", { name: "points", type: "number", required: true, step: 1 })),
      ui.field(t("customers.adjust.reason"), h("input", { name: "reason", required: true, minlength: 3, maxlength: 200 })),
      ui.field(t("customers.adjust.ticket"), h("input", { name: "ticket_id", maxlength: 200 }))],
    submitLabel: t("customers.adjust.submit"),
    secondary: ask,
    onsubmit: async (data, element) => {
      done.textContent = "";
      ask.hidden = true;
      const body = { points: Number(data.get("points")), reason: data.get("reason"), ticket_id: data.get("ticket_id") || null };
      let result;
      try {
        result = await api.post(path(id, "/adjustments"), body);
      } catch (error) {
        refused = error.status === 403 && ctx.identity.role === "agent" ? body : null;
        ask.hidden = !refused;
        throw error;  // the form shows the API's problem
      }
      done.textContent = t("customers.adjust.done", { points: `${result.points > 0 ? "+" : ""}${formatNumber(result.points)}`,
                                                      available: formatNumber(result.available_after) });
      element.reset();
      parts.ledger.reload();
      parts.loyaltyBody.replaceChildren(loyaltyFields(await api.get(path(id))));
    },
  });
  ask.addEventListener("click", async () => {
    ask.disabled = true;
    try {
      const request = await api.post(path(id, "/adjustment-requests"), refused);
      form.lastElementChild.replaceChildren();  // the refusal is answered
      ask.hidden = true;
      done.textContent = t("customers.adjust.asked", { id: request.request_id, points: formatNumber(request.points) });
      form.reset();
    } catch (error) {
      form.lastElementChild.replaceChildren(ui.problem(error));
    } finally {
      ask.disabled = false;
    }
  });
  return card(t("customers.adjust"), hint, form, done);
}

async function recordCsat(ticket, cell, status) {
  const score = h("select", { name: "score" }, [5, 4, 3, 2, 1].map((n) => h("option", { value: n }, String(n))));
  const comment = h("textarea", { name: "comment", maxlength: 2000 });
  const pressed = await ui.dialog(t("customers.csat.title", { id: ticket.ticket_id }), h("div", {},
    ui.field(t("customers.csat.score"), score), ui.field(t("customers.csat.comment"), comment)),
  [{ label: t("common.cancel"), value: null, secondary: true }, { label: t("common.save"), value: "save" }]);
  status.replaceChildren();
  if (pressed !== "save") return;
  try {
    const rating = await api.post(`/v1/tickets/${encodeURIComponent(ticket.ticket_id)}/csat`, {
      score: Number(score.value), comment: comment.value.trim() || null });
    cell.replaceChildren(t("customers.csat.done", { score: rating.score }));
  } catch (error) {
    status.append(ui.problem(error));
  }
}

function csatCard(id) {
  const status = h("div", {});
  const list = ui.pager({
    load: (cursor) => api.get("/v1/tickets", { customer_id: id, status: "resolved,closed", cursor, limit: 10 }),
    empty: t("customers.csat.none"),
    render: (items) => ui.table([
      { key: "ticket_id", label: t("customers.csat.ticket"),
        render: (r) => h("a", { href: `#/tickets/${encodeURIComponent(r.ticket_id)}` }, r.ticket_id) },
      { key: "subject", label: t("customers.csat.subject") },
      { key: "resolved_at", label: t("customers.csat.resolved"), render: (r) => formatDate(r.resolved_at) },
      { key: "csat", label: "", render: (r) => {
        const cell = h("span", {});
        cell.append(h("button", { type: "button", class: "secondary", onclick: () => recordCsat(r, cell, status) },
                      t("customers.csat.record")));
        return cell;
      } }], items),
  });
  return card(t("customers.csat"), h("p", { class: "muted" }, t("customers.csat.help")), list, status);
}

export function actionCards(id, parts, ctx) {
  return [logCallCard(id, parts), ticketCard(id, parts), adjustCard(id, parts, ctx), csatCard(id)];
}

export const routes = [];
