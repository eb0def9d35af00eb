// Tickets: what the queue, the detail and the new-ticket screens share: texts, badges, the
// workflow's moves, and the live SLA clock.
import { h, t, ui } from "../lib/console.js";

export const messages = {
  en: {
    "tickets.queue": "Ticket queue", "tickets.new": "New ticket", "tickets.ticket": "Ticket",
    "tickets.subject": "Subject", "tickets.customer": "Customer id", "tickets.status": "Status",
    "tickets.priority": "Priority", "tickets.assignee": "Assignee", "tickets.group": "Queue", "tickets.sla": "SLA",
    "tickets.created": "Opened", "tickets.kind": "Kind", "tickets.channel": "Channel", "tickets.category": "Category",
    "tickets.subcategory": "Sub-category", "tickets.order": "Order id", "tickets.description": "Description",
    "tickets.root_cause": "Root cause", "tickets.tier": "Tier", "tickets.churn": "Churn risk",
    "tickets.created_by": "Opened by", "tickets.first_response_at": "First response", "tickets.resolved_at": "Resolved",
    "tickets.closed_at": "Closed", "tickets.reopened": "Reopened", "tickets.unassigned": "Unassigned",
    "tickets.priority.low": "Low", "tickets.priority.normal": "Normal", "tickets.priority.high": "High",
    "tickets.priority.urgent": "Urgent",
    "tickets.status.new": "New", "tickets.status.open": "Open", "tickets.status.pending_customer": "Pending customer",
    "tickets.status.resolved": "Resolved", "tickets.status.closed": "Closed",
    "tickets.kind.complaint": "Complaint", "tickets.kind.after_sales_repair": "After-sales: repair",
    "tickets.kind.after_sales_exchange": "After-sales: exchange", "tickets.kind.return": "Return",
    "tickets.kind.enquiry": "Enquiry", "tickets.kind.follow_up": "Follow-up task",
    "tickets.channel.phone": "Phone", "tickets.channel.chat": "Chat", "tickets.channel.email": "E-mail",
    "tickets.channel.web": "Web form", "tickets.channel.app": "App", "tickets.channel.system": "System",
    "tickets.clock.first_response": "Response", "tickets.clock.resolution": "Resolution",
    "tickets.clock.left": "{left} left", "tickets.clock.breached_ago": "breached {ago} ago",
    "tickets.clock.breached": "breached", "tickets.clock.met": "met", "tickets.clock.stopped": "stopped",
    "tickets.clock.paused": "paused ({minutes} business min left)", "tickets.clock.none": "no target",
  },
  "zh-CN": {
    "tickets.queue": "工单队列", "tickets.new": "新建工单", "tickets.ticket": "工单",
    "tickets.subject": "主题", "tickets.customer": "客户 ID", "tickets.status": "状态",
    "tickets.priority": "优先级", "tickets.assignee": "处理人", "tickets.group": "队列", "tickets.sla": "SLA",
    "tickets.created": "创建时间", "tickets.kind": "类型", "tickets.channel": "渠道", "tickets.category": "分类",
    "tickets.subcategory": "子分类", "tickets.order": "订单号", "tickets.description": "描述",
    "tickets.root_cause": "根本原因", "tickets.tier": "会员等级", "tickets.churn": "流失风险",
    "tickets.created_by": "创建人", "tickets.first_response_at": "首次响应", "tickets.resolved_at": "解决时间",
    "tickets.closed_at": "关闭时间", "tickets.reopened": "重开次数", "tickets.unassigned": "未分配",
    "tickets.priority.low": "低", "tickets.priority.normal": "普通", "tickets.priority.high": "高",
    "tickets.priority.urgent": "紧急",
    "tickets.status.new": "新建", "tickets.status.open": "处理中", "tickets.status.pending_customer": "等待客户",
    "tickets.status.resolved": "已解决", "tickets.status.closed": "已关闭",
    "tickets.kind.complaint": "投诉", "tickets.kind.after_sales_repair": "售后：维修",
    "tickets.kind.after_sales_exchange": "售后：换货", "tickets.kind.return": "退货",
    "tickets.kind.enquiry": "咨询", "tickets.kind.follow_up": "跟进任务",
    "tickets.channel.phone": "电话", "tickets.channel.chat": "在线聊天", "tickets.channel.email": "邮件",
    "tickets.channel.web": "网页表单", "tickets.channel.app": "App", "tickets.channel.system": "系统",
    "tickets.clock.first_response": "响应", "tickets.clock.resolution": "解决",
    "tickets.clock.left": "剩余 {left}", "tickets.clock.breached_ago": "已超时 {ago}",
    "tickets.clock.breached": "已超时", "tickets.clock.met": "已达成", "tickets.clock.stopped": "已停止",
    "tickets.clock.paused": "已暂停（剩余 {minutes} 工作分钟）", "tickets.clock.none": "无目标",
  },
};

export const KINDS = ["complaint", "after_sales_repair", "after_sales_exchange", "return", "enquiry", "follow_up"];
export const CHANNELS = ["phone", "chat", "email", "web", "app", "system"];
export const PRIORITIES = ["low", "normal", "high", "urgent"];
export const ACTIVE = ["new", "open", "pending_customer"];

// The workflow's moves, as the tickets service allows them (domain/policy.py TRANSITIONS; the API
// does not publish them). Reopening (→ open from resolved or closed) is also bounded by reopen_days.
export const TRANSITIONS = {
  new: ["open", "pending_customer", "resolved"], open: ["pending_customer", "resolved"],
  pending_customer: ["open", "resolved"], resolved: ["open", "closed"], closed: ["open"],
};

export function allowedMoves(ticket, reopenDays, now = Date.now()) {
  return (TRANSITIONS[ticket.status] || []).filter((target) => {
    if (!["resolved", "closed"].includes(ticket.status) || target !== "open") return true;
    return ticket.resolved_at && now - Date.parse(ticket.resolved_at) <= reopenDays * 86400e3;
  });
}

export function statusBadge(status) {
  const kind = { resolved: "resolved", closed: "ok", pending_customer: "warning", new: "medium" }[status] || "";
  return ui.badge(t(`tickets.status.${status}`), kind);
}

export function priorityBadge(priority) {
  return ui.badge(t(`tickets.priority.${priority}`), { urgent: "urgent", high: "high-priority" }[priority] || "");
}

function span(seconds) {
  const s = Math.max(0, Math.floor(seconds));
  const d = Math.floor(s / 86400), hh = Math.floor((s % 86400) / 3600), mm = Math.floor((s % 3600) / 60);
  const ss = String(s % 60).padStart(2, "0");
  if (d) return `${d}d ${hh}h ${String(mm).padStart(2, "0")}m ${ss}s`;
  if (hh) return `${hh}h ${String(mm).padStart(2, "0")}m ${ss}s`;
  return `${mm}m ${ss}s`;
}

// One clock's text now, and how it looks: running clocks count down to due_at (an instant the
// service computed in business time), and read "breached" once it is past.
function clockNow(clock, now) {
  // A paused clock has no due time: the business time left is kept until it resumes.
  if (clock?.state === "paused") return [t("tickets.clock.paused", { minutes: clock.left_minutes }), "warning"];
  if (clock?.state === "met") return [t("tickets.clock.met"), "ok"];
  if (!clock || !clock.due_at) return [t("tickets.clock.none"), ""];
  const left = (Date.parse(clock.due_at) - now) / 1000;
  if (clock.state === "stopped") return [clock.breached ? t("tickets.clock.breached") : t("tickets.clock.stopped"), ""];
  // Marked by the service's SLA sweep (the clock may have stopped since): no count.
  if (clock.state === "breached") return [t("tickets.clock.breached"), "breached"];
  if (left <= 0) return [t("tickets.clock.breached_ago", { ago: span(-left) }), "breached"];
  return [t("tickets.clock.left", { left: span(left) }), clock.warning_sent || left < 3600 ? "warning" : "running"];
}

function paint(element) {
  const clock = element.sla;
  const [text, kind] = clockNow(clock, Date.now());
  element.lastChild.textContent = text;
  element.className = `sla-clock ${kind}`;
  element.dataset.state = kind || clock?.state || "none";
}

// The page's one ticking timer: it repaints every clock in the document each second.
let ticking = null;
function tick() {
  const clocks = document.querySelectorAll(".sla-clock");
  clocks.forEach(paint);
  if (!clocks.length) { clearInterval(ticking); ticking = null; }
}

export function slaClock(which, clock) {
  const element = h("span", { class: "sla-clock", role: "timer", "data-clock": which },
                    h("span", { class: "sla-label" }, `${t(`tickets.clock.${which}`)}: `), h("span", {}, ""));
  element.sla = clock;
  paint(element);
  if (!ticking) ticking = setInterval(tick, 1000);
  return element;
}

export function slaClocks(ticket) {
  return h("span", { class: "sla-clocks" }, slaClock("first_response", ticket.sla?.first_response),
           slaClock("resolution", ticket.sla?.resolution));
}

// The clock closest to its due time among the running ones (for "breaching soon").
export function nextDue(ticket) {
  const running = Object.values(ticket.sla || {}).filter((c) => c.due_at && ["running", "breached"].includes(c.state));
  return running.length ? Math.min(...running.map((c) => Date.parse(c.due_at))) : Infinity;
}
