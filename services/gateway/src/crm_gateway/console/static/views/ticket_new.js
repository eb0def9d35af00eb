// Call centre: open a ticket for a customer (from a call, or from the customer's 360 via
// #/tickets/new/<customer_id>). Only the id travels in the URL; everything else is typed here.
import { h, t, api, ui, navigate } from "../lib/console.js";
import { CHANNELS, KINDS, PRIORITIES } from "./tickets_shared.js";

export const messages = {
  en: {
    "tickets.new_title": "Open a ticket", "tickets.priority_auto": "From the category and the customer (automatic)",
    "tickets.create": "Open the ticket", "tickets.created_toast": "Ticket {id} opened",
    "tickets.category_hint": "The queue and the priority follow the category.",
  },
  "zh-CN": {
    "tickets.new_title": "新建工单", "tickets.priority_auto": "按分类和客户自动确定",
    "tickets.create": "创建工单", "tickets.created_toast": "工单 {id} 已创建",
    "tickets.category_hint": "队列和优先级由分类决定。",
  },
};

function options(values, prefix, selected) {
  return values.map((v) => h("option", { value: v, selected: v === selected ? true : null }, t(`${prefix}.${v}`)));
}

export async function renderNew(main, params) {
  main.append(h("h1", {}, t("tickets.new_title")));
  // The policy's categories as suggestions (agents may read the policy); a free text otherwise.
  const policy = await api.get("/v1/ticketing/policy").catch(() => null);
  const categories = Object.keys(policy?.config?.category_priority || {});
  const customer = h("input", { name: "customer_id", required: true, maxlength: 200, autocomplete: "off",
                                value: params.customer_id || "" });
  const subject = h("input", { name: "subject", required: true, maxlength: 200, autocomplete: "off" });
  const category = h("input", { name: "category", list: "tickets-categories", maxlength: 200, autocomplete: "off" });
  const fields = [
    ui.field(t("tickets.customer"), customer),
    h("div", { class: "row tickets-row" },
      ui.field(t("tickets.kind"), h("select", { name: "kind" }, options(KINDS, "tickets.kind", "complaint"))),
      ui.field(t("tickets.channel"), h("select", { name: "channel" }, options(CHANNELS, "tickets.channel", "phone"))),
      ui.field(t("tickets.priority"), h("select", { name: "priority" },
        h("option", { value: "" }, t("tickets.priority_auto")), options(PRIORITIES, "tickets.priority")))),
    ui.field(t("tickets.subject"), subject),
    h("p", { class: "muted" }, t("tickets.category_hint")),
    h("div", { class: "row tickets-row" },
      ui.field(t("tickets.category"), category),
      h("datalist", { id: "tickets-categories" }, categories.map((c) => h("option", { value: c }))),
      ui.field(t("tickets.subcategory"), h("input", { name: "subcategory", maxlength: 200, autocomplete: "off" })),
      ui.field(t("tickets.order"), h("input", { name: "order_id", maxlength: 200, autocomplete: "off" }))),
    ui.field(t("tickets.description"), h("textarea", { name: "description", maxlength: 20000, rows: 5 })),
  ];
  main.append(h("section", { class: "card" }, ui.form({
    fields, submitLabel: t("tickets.create"),
    onsubmit: async (data) => {
      const body = { customer_id: data.get("customer_id").trim(), kind: data.get("kind"),
                     channel: data.get("channel"), subject: data.get("subject").trim(),
                     description: data.get("description") };
      for (const key of ["category", "subcategory", "order_id", "priority"]) {
        const value = (data.get(key) || "").trim();
        if (value) body[key] = value;
      }
      const ticket = await api.post("/v1/tickets", body);
      ui.toast(t("tickets.created_toast", { id: ticket.ticket_id }));
      navigate(`#/tickets/${encodeURIComponent(ticket.ticket_id)}`);
    },
  })));
  (params.customer_id ? subject : customer).focus();
}
