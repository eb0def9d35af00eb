// Call centre: find a customer. (The customer 360 screen is customer360.js.)
import { h, t, api, ui } from "../lib/console.js";

export const messages = {
  en: { "customers.title": "Find a customer", "customers.by": "Search by", "customers.by.name": "Name",
        "customers.by.email": "E-mail", "customers.by.phone": "Phone", "customers.by.customer_id": "Customer id",
        "customers.value": "Search for", "customers.results": "Customers found", "customers.id": "Customer id",
        "customers.name": "Name", "customers.email": "E-mail", "customers.phone": "Phone", "customers.city": "City" },
  "zh-CN": { "customers.title": "查找客户", "customers.by": "查找方式", "customers.by.name": "姓名",
        "customers.by.email": "邮箱", "customers.by.phone": "电话", "customers.by.customer_id": "客户 ID",
        "customers.value": "查找内容", "customers.results": "找到的客户", "customers.id": "客户 ID",
        "customers.name": "姓名", "customers.email": "邮箱", "customers.phone": "电话", "customers.city": "城市" },
};

const STAFF = ["agent", "supervisor"];

// The search terms stay in this page's memory: never in the page URL (they are PII). The last
// search is kept (for the same user) so that "back to the search" from a 360 shows it again.
let last = null;

async function search(main, ctx) {
  const by = h("select", { name: "by" }, ["name", "email", "phone", "customer_id"].map((k) => h("option", { value: k },
    t(`customers.by.${k}`))));
  const value = h("input", { name: "value", required: true, type: "search", autocomplete: "off" });
  const results = h("section", { "aria-label": t("customers.results") });
  main.append(h("h1", {}, t("customers.title")), h("div", { class: "card" }, ui.form({
    fields: h("div", { class: "row" }, ui.field(t("customers.by"), by), ui.field(t("customers.value"), value)),
    submitLabel: t("common.search"),
    onsubmit: async (data) => {
      last = { subject: ctx.identity.subject, by: data.get("by"), value: data.get("value") };
      results.replaceChildren(ui.pager({
        load: (cursor) => api.get("/v1/profiles", { [data.get("by")]: data.get("value").trim(), cursor }),
        render: (items) => ui.table([
          { key: "customer_id", label: t("customers.id"),
            render: (row) => h("a", { href: `#/customers/${encodeURIComponent(row.customer_id)}` }, row.customer_id) },
          { key: "name", label: t("customers.name") }, { key: "email", label: t("customers.email") },
          { key: "phone", label: t("customers.phone") }, { key: "city", label: t("customers.city") }], items),
      }));
    },
  })), results);
  value.focus();
  if (last && last.subject === ctx.identity.subject) {
    by.value = last.by;
    value.value = last.value;
    main.querySelector("form").requestSubmit();
  }
}

export const routes = [
  { path: "/customers", nav: "customers.title", group: "agent", roles: STAFF, render: (main, params, ctx) => search(main, ctx) },
];
