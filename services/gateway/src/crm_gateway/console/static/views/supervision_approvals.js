// Supervision: approvals. Campaigns whose audience is over APPROVAL_AUDIENCE_SIZE wait in
// `awaiting_approval` until a supervisor approves them (POST /v1/campaigns/{id}/approve).
// Point adjustments above an agent's limit: the agent's request waits in the loyalty service's queue
// (GET /v1/loyalty/adjustment-requests?status=pending) until a supervisor decides it; an approval
// makes the adjustment (POST …/adjustment-requests/{id}/decision).
import { h, t, api, ui, formatDate, formatNumber } from "../lib/console.js";

export const messages = {
  en: {
    "supervision.approvals": "Approvals", "supervision.approvals.campaigns": "Campaigns waiting for approval",
    "supervision.approvals.campaigns_note": "A campaign whose audience is larger than the approval size waits here after activation; approving it lets it send.",
    "supervision.approvals.none": "No campaign is waiting for approval.",
    "supervision.approvals.name": "Campaign", "supervision.approvals.kind": "Kind", "supervision.approvals.size": "Audience (estimated)",
    "supervision.approvals.audience": "Audience", "supervision.approvals.template": "Template", "supervision.approvals.actions": "Actions",
    "supervision.approvals.created_by": "Created by", "supervision.approvals.updated": "Last changed",
    "supervision.approvals.approve": "Approve", "supervision.approvals.approve_named": "Approve {name}",
    "supervision.approvals.confirm": "Approve “{name}”? It goes live at once and sends to about {size} customers.",
    "supervision.approvals.approved": "“{name}” approved: it is now {status}.",
    "supervision.approvals.adjustments": "Point adjustments above an agent's limit",
    "supervision.approvals.adjustments_note": "An agent refused an adjustment above the programme's agent limit (or past the period allowance) asks a supervisor; approving makes the adjustment now, with you as its actor. Nobody decides their own request. The limits are in the programme settings.",
    "supervision.approvals.limits": "Programme settings", "supervision.approvals.no_requests": "No adjustment is waiting for a decision.",
    "supervision.approvals.customer": "Customer", "supervision.approvals.points": "Points", "supervision.approvals.reason": "Reason",
    "supervision.approvals.ticket": "Ticket", "supervision.approvals.requested_by": "Asked by", "supervision.approvals.requested_at": "Asked",
    "supervision.approvals.note": "Note (optional)", "supervision.approvals.note_for": "Note on the request {id}",
    "supervision.approvals.reject": "Reject", "supervision.approvals.approve_request": "Approve the request {id}",
    "supervision.approvals.reject_request": "Reject the request {id}",
    "supervision.approvals.decided": "Request {id}: {status}.",
  },
  "zh-CN": {
    "supervision.approvals": "审批", "supervision.approvals.campaigns": "待审批的营销活动",
    "supervision.approvals.campaigns_note": "受众超过审批阈值的活动在启用后进入此处等待；审批后即开始发送。",
    "supervision.approvals.none": "没有待审批的活动。",
    "supervision.approvals.name": "活动", "supervision.approvals.kind": "类型", "supervision.approvals.size": "受众（估计）",
    "supervision.approvals.audience": "受众", "supervision.approvals.template": "模板", "supervision.approvals.actions": "动作",
    "supervision.approvals.created_by": "创建人", "supervision.approvals.updated": "最后修改",
    "supervision.approvals.approve": "批准", "supervision.approvals.approve_named": "批准 {name}",
    "supervision.approvals.confirm": "批准“{name}”？活动将立即生效，发送给约 {size} 位客户。",
    "supervision.approvals.approved": "“{name}”已批准：当前状态 {status}。",
    "supervision.approvals.adjustments": "超出客服额度的积分调整",
    "supervision.approvals.adjustments_note": "客服超过方案中客服额度（或周期额度）的调整被拒绝后，可提交主管审批；批准后立即以您的名义调整。任何人不能审批自己的申请。额度在积分方案设置中。",
    "supervision.approvals.limits": "积分方案设置", "supervision.approvals.no_requests": "没有待审批的积分调整。",
    "supervision.approvals.customer": "客户", "supervision.approvals.points": "积分", "supervision.approvals.reason": "原因",
    "supervision.approvals.ticket": "工单", "supervision.approvals.requested_by": "申请人", "supervision.approvals.requested_at": "申请时间",
    "supervision.approvals.note": "备注（可选）", "supervision.approvals.note_for": "申请 {id} 的备注",
    "supervision.approvals.reject": "驳回", "supervision.approvals.approve_request": "批准申请 {id}",
    "supervision.approvals.reject_request": "驳回申请 {id}",
    "supervision.approvals.decided": "申请 {id}：{status}。",
  },
};

// The campaigns waiting for a supervisor, a page at a time with the API's cursor.
const WAITING = { status: "awaiting_approval", limit: 25 };

async function approve(campaign, refresh) {
  const size = formatNumber(campaign.estimated_size);
  const choice = await ui.dialog(t("supervision.approvals.approve"), h("p", {}, t("supervision.approvals.confirm",
    { name: campaign.name, size })), [{ label: t("common.cancel"), value: null, secondary: true },
    { label: t("supervision.approvals.approve"), value: "approve" }]);
  if (choice !== "approve") return;
  const approved = await api.post(`/v1/campaigns/${encodeURIComponent(campaign.campaign_id)}/approve`);
  ui.toast(t("supervision.approvals.approved", { name: approved.name, status: approved.status }));
  refresh();
}

function campaignsTable(items, refresh) {
  return ui.table([
    { key: "name", label: t("supervision.approvals.name"),
      render: (c) => h("span", {}, h("a", { href: `#/campaigns/${encodeURIComponent(c.campaign_id)}` }, h("strong", {}, c.name)),
                       h("br", {}), h("small", { class: "muted" }, c.campaign_id)) },
    { key: "kind", label: t("supervision.approvals.kind"), render: (c) => ui.badge(c.kind) },
    { key: "estimated_size", label: t("supervision.approvals.size"), num: true },
    { key: "audience_id", label: t("supervision.approvals.audience") },
    { key: "actions", label: t("supervision.approvals.actions"), render: (c) => c.actions.map((a) => a.kind).join(", ") },
    { key: "created_by", label: t("supervision.approvals.created_by") },
    { key: "updated_at", label: t("supervision.approvals.updated"), render: (c) => formatDate(c.updated_at) },
    { key: "approve", label: "", render: (c) => {
      const status = h("div", {});
      const button = h("button", { type: "button", "aria-label": t("supervision.approvals.approve_named", { name: c.name }),
        onclick: async () => {
          button.disabled = true;
          status.replaceChildren();
          try { await approve(c, refresh); } catch (error) { status.append(ui.problem(error)); } finally { button.disabled = false; }
        } }, t("supervision.approvals.approve"));
      return h("div", {}, button, status);
    } }], items, { caption: t("supervision.approvals.campaigns") });
}

function requestsTable(items, refresh) {
  return ui.table([
    { key: "customer_id", label: t("supervision.approvals.customer"),
      render: (r) => h("a", { href: `#/customers/${encodeURIComponent(r.customer_id)}` }, r.customer_id) },
    { key: "points", label: t("supervision.approvals.points"), num: true,
      render: (r) => `${r.points > 0 ? "+" : ""}${formatNumber(r.points)}` },
    { key: "reason", label: t("supervision.approvals.reason") },
    { key: "ticket_id", label: t("supervision.approvals.ticket"),
      render: (r) => (r.ticket_id ? h("a", { href: `#/tickets/${encodeURIComponent(r.ticket_id)}` }, r.ticket_id) : t("common.none")) },
    { key: "requested_by", label: t("supervision.approvals.requested_by") },
    { key: "requested_at", label: t("supervision.approvals.requested_at"), render: (r) => formatDate(r.requested_at) },
    { key: "decide", label: "", render: (r) => {
      const note = h("input", { name: "note", maxlength: 200, autocomplete: "off", placeholder: t("supervision.approvals.note"),
                                "aria-label": t("supervision.approvals.note_for", { id: r.request_id }) });
      const status = h("div", {});
      const decide = (approve) => async (event) => {
        const buttons = event.currentTarget.parentElement.querySelectorAll("button");
        buttons.forEach((b) => { b.disabled = true; });
        status.replaceChildren();
        try {
          const decided = await api.post(`/v1/loyalty/adjustment-requests/${encodeURIComponent(r.request_id)}/decision`,
            { approve, note: note.value.trim() || null });
          ui.toast(t("supervision.approvals.decided", { id: decided.request_id, status: decided.status }));
          refresh();
        } catch (error) {
          status.append(ui.problem(error));
        } finally {
          buttons.forEach((b) => { b.disabled = false; });
        }
      };
      return h("div", {}, note, h("div", { class: "row" },
        h("button", { type: "button", "aria-label": t("supervision.approvals.approve_request", { id: r.request_id }), onclick: decide(true) },
          t("supervision.approvals.approve")),
        h("button", { type: "button", class: "secondary", "aria-label": t("supervision.approvals.reject_request", { id: r.request_id }),
          onclick: decide(false) }, t("supervision.approvals.reject"))), status);
    } }], items, { caption: t("supervision.approvals.adjustments") });
}

async function approvals(main) {
  const list = h("div", {});
  const refresh = () => list.replaceChildren(ui.pager({
    load: (cursor) => api.get("/v1/campaigns", { ...WAITING, cursor }),
    render: (items) => campaignsTable(items, refresh), empty: t("supervision.approvals.none") }));
  const requests = h("div", {});
  const refreshRequests = () => requests.replaceChildren(ui.pager({
    load: (cursor) => api.get("/v1/loyalty/adjustment-requests", { status: "pending", limit: 20, cursor }),
    render: (items) => requestsTable(items, refreshRequests), empty: t("supervision.approvals.no_requests") }));
  main.append(h("h1", {}, t("supervision.approvals")),
    h("section", { class: "card", "aria-labelledby": "sup-approve-campaigns" },
      h("h2", { id: "sup-approve-campaigns" }, t("supervision.approvals.campaigns")),
      h("p", { class: "muted" }, t("supervision.approvals.campaigns_note")), list),
    h("section", { class: "card", "aria-labelledby": "sup-approve-adjustments" },
      h("h2", { id: "sup-approve-adjustments" }, t("supervision.approvals.adjustments")),
      h("p", { class: "muted" }, t("supervision.approvals.adjustments_note"), " ",
        h("a", { href: "#/settings/programme" }, t("supervision.approvals.limits"))), requests));
  refresh();
  refreshRequests();
}

export const routes = [
  { path: "/approvals", nav: "supervision.approvals", group: "supervision", roles: ["supervisor"], render: (main) => approvals(main) },
];
