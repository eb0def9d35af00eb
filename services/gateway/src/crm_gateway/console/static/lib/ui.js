// The console's building blocks: problems, loading, pages of a list, tables, forms, dialogs, charts.
import { ApiError } from "./api.js";
import { append, clear, h } from "./dom.js";
import { formatNumber, t } from "./i18n.js";

// An API error as the API stated it: the problem's title and detail.
function problem(error) {
  const details = error instanceof ApiError ? error.problem : { title: t("common.error"), detail: String(error) };
  const invalid = Array.isArray(details.errors) ? details.errors.map((e) => h("li", {}, e.loc ? `${e.loc.join(".")}: ` : "",
                                                                                e.msg || JSON.stringify(e))) : [];
  return h("div", { class: "problem", role: "alert" }, h("strong", {}, details.title || t("common.error")),
           details.detail ? h("span", {}, details.detail) : null, invalid.length ? h("ul", {}, invalid) : null);
}

function loading() {
  return h("p", { class: "loading", "aria-busy": "true" }, t("common.loading"));
}

// Shows "Loading…" in place, then what build() returns, or the problem it threw.
async function load(container, build) {
  const placeholder = loading();
  append(container, placeholder);
  try {
    const node = await build();
    placeholder.replaceWith(node ?? "");
    return node;
  } catch (error) {
    placeholder.replaceWith(problem(error));
    return null;
  }
}

// A list read page by page with the API's cursors: a "More" button while next_cursor is set.
function pager({ load: loadPage, render, items = "items", empty }) {
  const list = h("div", { class: "pager" });
  const more = h("button", { type: "button", class: "secondary pager-more", hidden: true }, t("common.more"));
  const container = h("div", {}, list, more);
  let cursor = null;
  let count = 0;
  async function next() {
    more.disabled = true;
    const status = loading();
    list.append(status);
    try {
      const page = await loadPage(cursor);
      status.remove();
      const rows = page[items] || [];
      count += rows.length;
      list.append(rows.length || count ? render(rows, page) : h("p", { class: "muted" }, empty || t("common.empty")));
      cursor = page.next_cursor || null;
      more.hidden = !cursor;
    } catch (error) {
      status.replaceWith(problem(error));
    } finally {
      more.disabled = false;
    }
  }
  more.addEventListener("click", next);
  next();
  return container;
}

// columns: [{key, label, render?(row), num?}]
function table(columns, rows, { caption } = {}) {
  return h("div", { class: "table-wrap" }, h("table", {},
    caption ? h("caption", { class: "sr-only" }, caption) : null,
    h("thead", {}, h("tr", {}, columns.map((c) => h("th", { scope: "col", class: c.num ? "num" : null }, c.label)))),
    h("tbody", {}, rows.map((row) => h("tr", {}, columns.map((c) => h("td", { class: c.num ? "num" : null },
      c.render ? c.render(row) : (c.num ? formatNumber(row[c.key]) : (row[c.key] ?? "—")))))))));
}

function field(label, input, hint) {
  return h("label", { class: "field" }, h("span", {}, label), input, hint ? h("small", { class: "muted" }, hint) : null);
}

// A form whose submit is async: the button is disabled while it runs and a problem shows under it.
function form({ fields, submitLabel, onsubmit, secondary }) {
  const status = h("div", {});
  const submit = h("button", { type: "submit" }, submitLabel || t("common.save"));
  const element = h("form", {}, fields, h("div", { class: "row" }, submit, secondary || null), status);
  element.addEventListener("submit", async (event) => {
    event.preventDefault();
    submit.disabled = true;
    clear(status);
    try {
      await onsubmit(new FormData(element), element);
    } catch (error) {
      status.append(problem(error));
    } finally {
      submit.disabled = false;
    }
  });
  return element;
}

// A modal dialog; resolves with the value of the pressed action (or null when dismissed).
function dialog(title, body, actions = [{ label: t("common.ok"), value: "ok" }]) {
  return new Promise((resolve) => {
    const element = h("dialog", { "aria-labelledby": "dialog-title" }, h("h2", { id: "dialog-title" }, title), body,
      h("div", { class: "actions" }, actions.map((a) => h("button", {
        type: "button", class: a.secondary ? "secondary" : null,
        onclick: () => { element.close(); resolve(a.value); } }, a.label))));
    element.addEventListener("cancel", () => resolve(null));
    element.addEventListener("close", () => element.remove());
    document.body.append(element);
    element.showModal();
  });
}

// A chart drawn by Chart.js, with the same numbers in a table for screen readers and tests.
function chart(kind, data, { title, id, options } = {}) {
  const canvas = h("canvas", { role: "img", "aria-label": title || "" });
  const table = h("table", {}, h("thead", {}, h("tr", {}, h("th", {}, ""), data.datasets.map((d) => h("th", {
    class: "num" }, d.label)))), h("tbody", {}, data.labels.map((label, i) => h("tr", {}, h("th", { scope: "row" }, label),
    data.datasets.map((d) => h("td", { class: "num", "data-value": d.data[i] }, formatNumber(d.data[i])))))));
  const figure = h("figure", { class: "chart", "data-chart": id || "" }, title ? h("figcaption", {}, title) : null,
                   canvas, h("details", {}, h("summary", {}, t("common.chart_data")), table));
  // Drawn once the figure is in the page (Chart.js measures its parent).
  requestAnimationFrame(() => {
    if (!window.Chart || !canvas.isConnected) return;
    const instance = new window.Chart(canvas, { type: kind, data, options: { animation: false, responsive: true,
      maintainAspectRatio: false, ...options } });
    figure.chart = instance;
  });
  return figure;
}

function toast(text) {
  const element = h("div", { class: "toast" }, text);
  document.getElementById("toasts").append(element);
  setTimeout(() => element.remove(), 4000);
}

function badge(text, kind) {
  return h("span", { class: `badge ${kind || ""}` }, text);
}

export const ui = { problem, loading, load, pager, table, field, form, dialog, chart, toast, badge };
