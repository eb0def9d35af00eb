// Call centre: one ticket. Its fields and SLA clocks, the workflow's next moves, assignment, the
// conversation (public replies and internal notes) with standard answers, and the history.
import { h, t, api, ui, formatDate } from "../lib/console.js";
import { allowedMoves, priorityBadge, slaClock, statusBadge } from "./tickets_shared.js";

export const messages = {
  en: {
    "tickets.details": "Details", "tickets.items": "Items", "tickets.workflow": "Status", "tickets.move_to": "Move to: {status}",
    "tickets.no_moves": "No move is allowed from this status.", "tickets.root_cause_hint": "Asked when resolving.",
    "tickets.moved": "Now {status}", "tickets.assignment": "Assignment", "tickets.assign_me": "Assign to me",
    "tickets.assign_agent": "Agent", "tickets.assign_to_agent": "Assign to this agent",
    "tickets.assign_group": "Queue", "tickets.assign_in_group": "Assign automatically in this queue",
    "tickets.assigned": "Assigned to {who}", "tickets.not_an_agent": "You are not on the agents list, so tickets cannot be assigned to you.",
    "tickets.available": "available", "tickets.away": "away", "tickets.load": "{n} active",
    "tickets.conversation": "Conversation", "tickets.public": "Reply to the customer", "tickets.internal": "Internal note",
    "tickets.by": "{author} ({role})", "tickets.role.staff": "staff", "tickets.role.customer": "customer",
    "tickets.from_article": "from standard answer {id}", "tickets.message": "Message",
    "tickets.send_reply": "Send reply", "tickets.add_note": "Add internal note",
    "tickets.note_hint": "Internal notes are never shown to the customer.",
    "tickets.sent": "Reply sent", "tickets.noted": "Internal note added",
    "tickets.answers": "Standard answers", "tickets.answers_q": "Search the knowledge base",
    "tickets.insert": "Insert", "tickets.inserted": "Inserted “{title}”", "tickets.no_answers": "No standard answer matches.",
    "tickets.history": "History", "tickets.action.opened": "opened", "tickets.action.assigned": "assigned",
    "tickets.action.status": "status changed", "tickets.action.comment": "commented", "tickets.action.updated": "corrected",
    "tickets.action.attachment": "attachment added",
  },
  "zh-CN": {
    "tickets.details": "详情", "tickets.items": "商品", "tickets.workflow": "状态", "tickets.move_to": "改为：{status}",
    "tickets.no_moves": "当前状态不允许任何变更。", "tickets.root_cause_hint": "解决时填写。",
    "tickets.moved": "现在为{status}", "tickets.assignment": "分配", "tickets.assign_me": "分配给我",
    "tickets.assign_agent": "客服", "tickets.assign_to_agent": "分配给该客服",
    "tickets.assign_group": "队列", "tickets.assign_in_group": "在该队列中自动分配",
    "tickets.assigned": "已分配给 {who}", "tickets.not_an_agent": "您不在客服名单中，不能把工单分配给您。",
    "tickets.available": "在线", "tickets.away": "离开", "tickets.load": "{n} 个进行中",
    "tickets.conversation": "对话", "tickets.public": "回复客户", "tickets.internal": "内部备注",
    "tickets.by": "{author}（{role}）", "tickets.role.staff": "员工", "tickets.role.customer": "客户",
    "tickets.from_article": "来自标准答案 {id}", "tickets.message": "内容",
    "tickets.send_reply": "发送回复", "tickets.add_note": "添加内部备注",
    "tickets.note_hint": "内部备注永远不会向客户显示。",
    "tickets.sent": "回复已发送", "tickets.noted": "内部备注已添加",
    "tickets.answers": "标准答案", "tickets.answers_q": "搜索知识库",
    "tickets.insert": "插入", "tickets.inserted": "已插入“{title}”", "tickets.no_answers": "没有匹配的标准答案。",
    "tickets.history": "历史", "tickets.action.opened": "创建", "tickets.action.assigned": "分配",
    "tickets.action.status": "状态变更", "tickets.action.comment": "评论", "tickets.action.updated": "更正",
    "tickets.action.attachment": "添加附件",
  },
};

// Fields the ticket has (empty ones left out, so a phone screen stays short); dd[data-field] for tests.
function kv(rows) {
  return h("dl", { class: "kv" }, rows.filter(([, , value]) => value !== null && value !== undefined && value !== "")
    .map(([key, label, value]) => [h("dt", {}, label), h("dd", { "data-field": key }, value)]));
}

function details(ticket) {
  const label = (prefix, value) => (value ? t(`${prefix}.${value}`) : null);
  const when = (value) => (value ? formatDate(value) : null);
  return kv([
    ["customer_id", t("tickets.customer"), h("a", { href: `#/customers/${encodeURIComponent(ticket.customer_id)}` },
                                             ticket.customer_id)],
    ["assignee", t("tickets.assignee"), ticket.assignee || t("tickets.unassigned")],
    ["group_id", t("tickets.group"), ticket.group_id],
    ["kind", t("tickets.kind"), label("tickets.kind", ticket.kind)],
    ["channel", t("tickets.channel"), label("tickets.channel", ticket.channel)],
    ["category", t("tickets.category"), ticket.category], ["subcategory", t("tickets.subcategory"), ticket.subcategory],
    ["order_id", t("tickets.order"), ticket.order_id],
    ["items", t("tickets.items"), ticket.items.map((i) => `${i.sku} × ${i.quantity}`).join(", ")],
    ["tier", t("tickets.tier"), ticket.tier], ["churn_level", t("tickets.churn"), ticket.churn_level],
    ["root_cause", t("tickets.root_cause"), ticket.root_cause],
    ["created_by", t("tickets.created_by"), ticket.created_by], ["created_at", t("tickets.created"), when(ticket.created_at)],
    ["first_response_at", t("tickets.first_response_at"), when(ticket.first_response_at)],
    ["resolved_at", t("tickets.resolved_at"), when(ticket.resolved_at)],
    ["closed_at", t("tickets.closed_at"), when(ticket.closed_at)],
    ["reopened_count", t("tickets.reopened"), ticket.reopened_count ? String(ticket.reopened_count) : null],
    ["description", t("tickets.description"), ticket.description ? h("span", { class: "pre" }, ticket.description) : null],
  ]);
}

function workflow(ticket, policy, act) {
  const moves = allowedMoves(ticket, policy?.config?.reopen_days ?? 14);
  const rootCause = h("input", { name: "root_cause", maxlength: 200, autocomplete: "off", value: ticket.root_cause || "" });
  const buttons = moves.map((status) => h("button", {
    type: "button", class: status === "resolved" ? null : "secondary",
    onclick: () => act(async () => {
      const body = { status };
      if (status === "resolved" && rootCause.value.trim()) body.root_cause = rootCause.value.trim();
      await api.post(`/v1/tickets/${encodeURIComponent(ticket.ticket_id)}/transitions`, body);
      return t("tickets.moved", { status: t(`tickets.status.${status}`) });
    }) }, t("tickets.move_to", { status: t(`tickets.status.${status}`) })));
  return h("div", {}, moves.length ? h("div", { class: "row" }, buttons) : h("p", { class: "muted" }, t("tickets.no_moves")),
           moves.includes("resolved") ? ui.field(t("tickets.root_cause"), rootCause, t("tickets.root_cause_hint")) : null);
}

function assignment(ticket, identity, agents, groups, act) {
  const path = `/v1/tickets/${encodeURIComponent(ticket.ticket_id)}/assignment`;
  const assign = (body, who) => act(async () => {
    const row = await api.post(path, body);
    return t("tickets.assigned", { who: row.assignee || who || t("tickets.unassigned") });
  });
  const onList = agents.some((a) => a.agent_id === identity.subject);
  const agent = h("select", { name: "agent_id" }, agents.map((a) => h("option", { value: a.agent_id,
    selected: a.agent_id === ticket.assignee ? true : null },
    `${a.name} (${a.agent_id}) · ${t(a.available ? "tickets.available" : "tickets.away")} · ${t("tickets.load", { n: a.open_tickets })}`)));
  const group = h("select", { name: "group_id" }, groups.map((g) => h("option", { value: g.group_id,
    selected: g.group_id === ticket.group_id ? true : null }, g.name)));
  return h("div", {},
    h("div", { class: "row" }, h("button", { type: "button", disabled: onList && ticket.assignee !== identity.subject ? null : true,
      onclick: () => assign({ agent_id: identity.subject }) }, t("tickets.assign_me"))),
    onList ? null : h("p", { class: "muted" }, t("tickets.not_an_agent")),
    agents.length ? h("div", { class: "row tickets-assign" }, ui.field(t("tickets.assign_agent"), agent),
      h("button", { type: "button", class: "secondary", onclick: () => assign({ agent_id: agent.value }) },
        t("tickets.assign_to_agent"))) : null,
    groups.length ? h("div", { class: "row tickets-assign" }, ui.field(t("tickets.assign_group"), group),
      h("button", { type: "button", class: "secondary", onclick: () => assign({ group_id: group.value }) },
        t("tickets.assign_in_group"))) : null);
}

function conversation(comments) {
  if (!comments.length) return h("p", { class: "muted" }, t("common.empty"));
  return h("ol", { class: "comments" }, comments.map((c) => h("li", { class: c.public ? "comment" : "comment internal",
    "data-comment": c.comment_id },
    h("div", { class: "row" }, ui.badge(t(c.public ? "tickets.public" : "tickets.internal"), c.public ? "" : "warning"),
      h("strong", {}, t("tickets.by", { author: c.author, role: t(`tickets.role.${c.author_role}`) })),
      h("span", { class: "muted" }, formatDate(c.created_at)),
      c.article_id ? h("span", { class: "muted" }, t("tickets.from_article", { id: c.article_id })) : null),
    h("p", { class: "pre" }, c.body))));
}

function change(key, value) {
  const show = (v) => (v === null || v === undefined || v === "" ? "—" : String(v));
  return Array.isArray(value) && value.length === 2 ? `${key}: ${show(value[0])} → ${show(value[1])}` : `${key}: ${show(value)}`;
}

function history(entries) {
  if (!entries.length) return h("p", { class: "muted" }, t("common.empty"));
  return h("ol", { class: "history" }, entries.map((e) => h("li", {},
    h("span", { class: "muted" }, formatDate(e.at)), " ", h("strong", {}, e.actor), " ",
    t(`tickets.action.${e.action}`) === `tickets.action.${e.action}` ? e.action : t(`tickets.action.${e.action}`), " ",
    h("span", { class: "muted" }, Object.entries(e.changes || {}).filter(([, v]) => v !== null && v !== undefined)
      .map(([k, v]) => change(k, v)).join("; ")))));
}

// The composer: a message box, standard answers inserted into it, and two ways to send it.
function composer(ticketId, reload) {
  const text = h("textarea", { name: "body", id: "tickets-message", required: true, maxlength: 20000, rows: 6 });
  let articleId = null;
  const status = h("div", {});
  const send = (isPublic) => async () => {
    status.replaceChildren();
    if (!text.value.trim()) { text.reportValidity(); return; }
    buttons.forEach((b) => { b.disabled = true; });
    try {
      const body = { body: text.value, public: isPublic };
      if (articleId && isPublic) body.article_id = articleId;
      await api.post(`/v1/tickets/${encodeURIComponent(ticketId)}/comments`, body);
      text.value = "";
      articleId = null;
      ui.toast(t(isPublic ? "tickets.sent" : "tickets.noted"));
      await reload();
    } catch (error) {
      status.append(ui.problem(error));
    } finally {
      buttons.forEach((b) => { b.disabled = false; });
    }
  };
  const buttons = [h("button", { type: "button", onclick: send(true) }, t("tickets.send_reply")),
                   h("button", { type: "button", class: "secondary", onclick: send(false) }, t("tickets.add_note"))];
  const q = h("input", { type: "search", name: "q", maxlength: 200, autocomplete: "off" });
  const results = h("div", { "aria-live": "polite" });
  const search = h("form", { class: "row tickets-kb", role: "search", onsubmit: (event) => {
    event.preventDefault();
    results.replaceChildren();
    ui.load(results, async () => {
      const found = await api.get("/v1/kb/articles", { q: q.value.trim(), limit: 10 });
      if (!found.length) return h("p", { class: "muted" }, t("tickets.no_answers"));
      return h("ul", { class: "answers" }, found.map((a) => h("li", { "data-article": a.article_id },
        h("div", {}, h("strong", {}, a.title), a.category ? [" ", ui.badge(a.category)] : null),
        h("p", { class: "muted pre" }, a.body.length > 240 ? `${a.body.slice(0, 240)}…` : a.body),
        h("button", { type: "button", class: "secondary", "aria-label": `${t("tickets.insert")}: ${a.title}`, onclick: () => {
          text.value = text.value.trim() ? `${text.value.trimEnd()}\n\n${a.body}` : a.body;
          articleId = a.article_id;
          text.focus();
          ui.toast(t("tickets.inserted", { title: a.title }));
        } }, t("tickets.insert")))));
    });
  } }, ui.field(t("tickets.answers_q"), q), h("button", { type: "submit", class: "secondary" }, t("common.search")));
  return h("div", { class: "tickets-compose" },
    ui.field(t("tickets.message"), text, t("tickets.note_hint")), h("div", { class: "row" }, buttons), status,
    h("details", { class: "tickets-answers" }, h("summary", {}, t("tickets.answers")), search, results));
}

export async function renderDetail(main, params, ctx) {
  const id = params.ticket_id;
  const path = `/v1/tickets/${encodeURIComponent(id)}`;
  const head = h("div", {});
  const info = h("div", {});
  const flow = h("div", {});
  const assign = h("div", {});
  const talk = h("div", {});
  const past = h("div", {});
  const actionStatus = h("div", {});
  main.append(head,
    h("div", { class: "grid tickets-detail" },
      h("section", { class: "card", "aria-labelledby": "tickets-h-details" }, h("h2", { id: "tickets-h-details" },
        t("tickets.details")), info),
      h("div", {},
        h("section", { class: "card", "aria-labelledby": "tickets-h-flow" }, h("h2", { id: "tickets-h-flow" },
          t("tickets.workflow")), flow, actionStatus),
        h("section", { class: "card", "aria-labelledby": "tickets-h-assign" }, h("h2", { id: "tickets-h-assign" },
          t("tickets.assignment")), assign))),
    h("section", { class: "card", "aria-labelledby": "tickets-h-talk" }, h("h2", { id: "tickets-h-talk" },
      t("tickets.conversation")), talk, composer(id, () => reload())),
    h("section", { class: "card", "aria-labelledby": "tickets-h-history" }, h("h2", { id: "tickets-h-history" },
      t("tickets.history")), past));

  const [policy, agents, groups] = await Promise.all([
    api.get("/v1/ticketing/policy").catch(() => null), api.get("/v1/ticketing/agents").catch(() => []),
    api.get("/v1/ticketing/groups").catch(() => [])]);

  // A workflow move or an assignment: run it, say what happened, and read the ticket again.
  async function act(run) {
    actionStatus.replaceChildren();
    main.querySelectorAll(".tickets-detail button").forEach((b) => { b.disabled = true; });
    try {
      ui.toast(await run());
    } catch (error) {
      actionStatus.append(ui.problem(error));
    }
    await reload().catch((error) => actionStatus.append(ui.problem(error)));
  }

  async function reload() {
    const [ticket, comments, entries] = await Promise.all([api.get(path), api.get(`${path}/comments`),
                                                          api.get(`${path}/history`)]);
    head.replaceChildren(h("h1", {}, ticket.subject),
      h("p", { class: "row muted" }, h("span", { "data-ticket-id": ticket.ticket_id }, ticket.ticket_id),
        statusBadge(ticket.status), priorityBadge(ticket.priority)),
      h("p", { class: "row tickets-clocks", "aria-label": t("tickets.sla") },
        slaClock("first_response", ticket.sla.first_response), slaClock("resolution", ticket.sla.resolution)));
    info.replaceChildren(details(ticket));
    flow.replaceChildren(workflow(ticket, policy, act));
    assign.replaceChildren(assignment(ticket, ctx.identity, agents, groups, act));
    talk.replaceChildren(conversation(comments));
    past.replaceChildren(history(entries));
  }
  await ui.load(head, async () => { await reload(); return null; });
}
