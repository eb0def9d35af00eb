// Call centre: the ticket queue (mine, my team's, unassigned, breaching soon) with live SLA clocks;
// the detail and the new-ticket screens live in ticket_detail.js and ticket_new.js.
import { h, t, api, ui, formatDate } from "../lib/console.js";
import { messages as shared, nextDue, priorityBadge, slaClocks, statusBadge } from "./tickets_shared.js";
import { messages as detailMessages, renderDetail } from "./ticket_detail.js";
import { messages as newMessages, renderNew } from "./ticket_new.js";

const own = {
  en: {
    "tickets.view": "Tickets to show", "tickets.view.mine": "Mine", "tickets.view.team": "My team's",
    "tickets.view.unassigned": "Unassigned", "tickets.view.breaching": "Breaching soon",
    "tickets.team_pick": "Queue", "tickets.no_team": "You are in no queue yet; a supervisor adds agents to queues.",
    "tickets.breaching_note": "Active tickets whose clock is breached or due within {hours} hours, soonest first.",
    "tickets.unassigned_note": "Active tickets without an assignee.",
  },
  "zh-CN": {
    "tickets.view": "显示的工单", "tickets.view.mine": "我的", "tickets.view.team": "我的团队",
    "tickets.view.unassigned": "未分配", "tickets.view.breaching": "即将超时",
    "tickets.team_pick": "队列", "tickets.no_team": "您还不属于任何队列；主管可以把客服加入队列。",
    "tickets.breaching_note": "已超时或将在 {hours} 小时内到期的进行中工单，最早到期的在前。",
    "tickets.unassigned_note": "没有处理人的进行中工单。",
  },
};

export const messages = Object.fromEntries(["en", "zh-CN"].map((lang) => [lang, {
  ...shared[lang], ...detailMessages[lang], ...newMessages[lang], ...own[lang] }]));

const STAFF = ["agent", "supervisor"];
const VIEWS = ["mine", "team", "unassigned", "breaching"];
const SOON_HOURS = 4;
const PAGE = 25;
// The tab chosen last, kept in this page's memory only (not in the URL, not in storage).
let lastView = "mine";

function ticketTable(rows) {
  return ui.table([
    { key: "ticket_id", label: t("tickets.ticket"), render: (row) => h("span", { class: "ticket-cell" },
      h("a", { href: `#/tickets/${encodeURIComponent(row.ticket_id)}` }, row.ticket_id),
      h("span", { class: "muted" }, row.subject)) },
    { key: "customer_id", label: t("tickets.customer") },
    { key: "status", label: t("tickets.status"), render: (row) => statusBadge(row.status) },
    { key: "priority", label: t("tickets.priority"), render: (row) => priorityBadge(row.priority) },
    { key: "assignee", label: t("tickets.assignee"), render: (row) => row.assignee || t("tickets.unassigned") },
    { key: "sla", label: t("tickets.sla"), render: (row) => slaClocks(row) },
    { key: "created_at", label: t("tickets.created"), render: (row) => formatDate(row.created_at) },
  ], rows, { caption: t("tickets.queue") });
}

// Each view is one filter of the API's list: the assignee, the queue, no assignee, or a clock due
// within SOON_HOURS (the page then shows the soonest first).
function listOf(view, identity, group) {
  const query = { status: "active", limit: PAGE };
  let order = null;
  if (view === "mine") query.assignee = identity.subject;
  if (view === "team") query.group_id = group;
  if (view === "unassigned") query.unassigned = "true";
  if (view === "breaching") {
    query.due_before = new Date(Date.now() + SOON_HOURS * 3600e3).toISOString();
    order = (a, b) => nextDue(a) - nextDue(b);
  }
  return ui.pager({
    load: (cursor) => api.get("/v1/tickets", { ...query, cursor }),
    render: (items) => {
      const rows = [...items];
      if (order) rows.sort(order);
      return ticketTable(rows);
    },
  });
}

async function teamPicker(identity, onpick) {
  const [agents, groups] = await Promise.all([api.get("/v1/ticketing/agents"), api.get("/v1/ticketing/groups")]);
  const me = agents.find((a) => a.agent_id === identity.subject);
  // An agent sees their own queues; a supervisor any queue.
  const mine = identity.role === "supervisor" ? groups.map((g) => g.group_id) : (me ? me.groups : []);
  if (!mine.length) return h("p", { class: "muted" }, t("tickets.no_team"));
  const names = Object.fromEntries(groups.map((g) => [g.group_id, g.name]));
  const select = h("select", { name: "group", onchange: (e) => onpick(e.target.value) },
                   mine.map((g) => h("option", { value: g }, names[g] || g)));
  onpick(mine[0]);
  return ui.field(t("tickets.team_pick"), select);
}

async function renderQueue(main, params, ctx) {
  const body = h("div", { class: "queue-body" });
  const tabs = VIEWS.map((view) => h("button", {
    type: "button", role: "tab", id: `tickets-tab-${view}`, "aria-controls": "tickets-panel",
    onclick: () => show(view) }, t(`tickets.view.${view}`)));
  const panel = h("section", { id: "tickets-panel", role: "tabpanel" }, body);
  main.append(h("div", { class: "row tickets-head" }, h("h1", {}, t("tickets.queue")),
                h("a", { class: "button", href: "#/tickets/new" }, t("tickets.new"))),
              h("div", { class: "tabs", role: "tablist", "aria-label": t("tickets.view") }, tabs), panel);

  function show(view) {
    lastView = view;
    tabs.forEach((tab, i) => {
      tab.setAttribute("aria-selected", String(VIEWS[i] === view));
      tab.tabIndex = VIEWS[i] === view ? 0 : -1;
    });
    panel.setAttribute("aria-labelledby", `tickets-tab-${view}`);
    body.replaceChildren();
    if (view === "team") {
      const list = h("div", {});
      ui.load(body, () => teamPicker(ctx.identity, (group) => list.replaceChildren(listOf("team", ctx.identity, group))))
        .then(() => body.append(list));
      return;
    }
    if (view === "unassigned") body.append(h("p", { class: "muted" }, t("tickets.unassigned_note")));
    if (view === "breaching") body.append(h("p", { class: "muted" }, t("tickets.breaching_note", { hours: SOON_HOURS })));
    body.append(listOf(view, ctx.identity));
  }
  // Arrow keys move between the tabs (the ARIA tabs pattern).
  tabs.forEach((tab, i) => tab.addEventListener("keydown", (event) => {
    const step = { ArrowRight: 1, ArrowLeft: -1 }[event.key];
    if (!step) return;
    const next = tabs[(i + step + tabs.length) % tabs.length];
    next.focus();
    next.click();
  }));
  show(lastView);
}

export const routes = [
  { path: "/tickets", nav: "tickets.queue", group: "agent", roles: STAFF, render: renderQueue },
  // Before /tickets/:ticket_id, which "new" would match too.
  { path: "/tickets/new", nav: "tickets.new", group: "agent", roles: STAFF, render: renderNew },
  { path: "/tickets/new/:customer_id", roles: STAFF, render: renderNew },
  { path: "/tickets/:ticket_id", roles: STAFF, render: renderDetail },
];
