// The console's shell: who is signed in, the menu for their role, and the hash router.
import { api, whenUnauthorized } from "./lib/api.js";
import { clear, h, navigate } from "./lib/dom.js";
import { addMessages, language, setLanguage, t } from "./lib/i18n.js";
import { messages } from "./lib/messages.js";
import { ui } from "./lib/ui.js";
import { modules } from "./views/index.js";

addMessages(messages);
modules.forEach((m) => addMessages(m.messages));
const routes = modules.flatMap((m) => m.routes).map((route) => ({ ...route, pattern: compile(route.path) }));
const NAV_GROUPS = [["agent", "nav.agent"], ["marketing", "nav.marketing"], ["supervision", "nav.supervision"]];
const main = document.getElementById("main");
let identity = null;

function compile(path) {
  const names = [];
  const regex = path.replace(/:(\w+)/g, (_, name) => { names.push(name); return "([^/]+)"; });
  return { regex: new RegExp(`^${regex}$`), names };
}

function match(path) {
  for (const route of routes) {
    const found = route.pattern.regex.exec(path);
    if (found) {
      return { route, params: Object.fromEntries(route.pattern.names.map((n, i) => [n, decodeURIComponent(found[i + 1])])) };
    }
  }
  return null;
}

function allowed(route) { return identity && route.roles.includes(identity.role); }

function homeOf() {
  const first = routes.find((r) => r.nav && allowed(r) && !r.path.includes(":"));
  return first ? `#${first.path}` : null;
}

function renderChrome() {
  document.documentElement.lang = language();
  document.title = t("app.title");
  document.querySelector(".skip").textContent = t("app.skip");
  document.getElementById("lang").value = language();
  document.getElementById("lang-label").textContent = t("app.language");
  document.getElementById("menu-toggle").setAttribute("aria-label", t("app.menu"));
  const signOut = document.getElementById("sign-out");
  signOut.textContent = t("app.sign_out");
  signOut.hidden = !identity;
  document.getElementById("who").textContent = identity
    ? t("app.signed_in_as", { subject: identity.subject, role: t(`role.${identity.role}`) }) : "";
  const nav = clear(document.getElementById("nav"));
  if (!identity) return;
  const current = location.hash.slice(1) || "/";
  // The one menu entry of this page: the longest path that is the page or a parent of it
  // (#/tickets/new is "New ticket", not also "Ticket queue").
  const active = routes.filter((r) => r.nav && allowed(r) && (current === r.path || current.startsWith(`${r.path}/`)))
    .sort((a, b) => b.path.length - a.path.length)[0];
  for (const [group, label] of NAV_GROUPS) {
    const links = routes.filter((r) => r.nav && (r.group || "agent") === group && allowed(r));
    if (!links.length) continue;
    nav.append(h("h2", {}, t(label)), ...links.map((r) => h("a", {
      href: `#${r.path}`, "aria-current": r === active ? "page" : null,
    }, t(r.nav))));
  }
}

async function render() {
  const path = location.hash.slice(1) || "/";
  renderChrome();
  clear(main);
  if (!identity) return renderSignIn();
  if (path === "/" || path === "/sign-in") {
    const home = homeOf();  // a role with no screen at all gets a page saying so, not a redirect loop
    return home ? navigate(home) : main.append(h("h1", {}, t("app.forbidden")));
  }
  const found = match(path);
  if (!found) return main.append(h("h1", {}, t("app.not_found")));
  if (!allowed(found.route)) return main.append(h("h1", {}, t("app.forbidden")));
  const ctx = { identity };
  try {
    await found.route.render(main, found.params, ctx);
  } catch (error) {
    main.append(ui.problem(error));
  }
}

async function renderSignIn(note) {
  clear(main);
  const card = h("section", { class: "card signin", "aria-labelledby": "signin-title" },
    h("h1", { id: "signin-title" }, t("signin.title")), note ? h("p", { class: "problem", role: "alert" }, note) : null);
  main.append(card);
  const config = await api.get("/v1/session/config").catch((error) => { card.append(ui.problem(error)); return null; });
  if (!config) return;
  if (config.methods.includes("oidc")) {
    const returnTo = `/console/${location.hash}`;
    card.append(h("p", {}, h("a", { class: "button", href: `/v1/session/oidc/login?return_to=${encodeURIComponent(returnTo)}` },
                             t("signin.oidc"))));
  }
  if (config.methods.includes("dev")) {
    const role = h("select", { name: "role", id: "signin-role" },
                   ["agent", "marketer", "supervisor"].map((r) => h("option", { value: r }, t(`role.${r}`))));
    const name = h("input", { name: "name", id: "signin-name", required: true, autocomplete: "username",
                              pattern: "[A-Za-z0-9._\\-]{1,60}", value: "" });
    // An agent may reveal PII only with the pii:read scope, which an identity provider grants; here, a box.
    const pii = h("input", { type: "checkbox", name: "pii", id: "signin-pii" });
    const piiRow = h("label", { class: "row" }, pii, t("signin.pii"));
    role.addEventListener("change", () => { piiRow.hidden = role.value !== "agent"; pii.checked = false; });
    card.append(h("p", { class: "muted" }, t("signin.dev_note")), ui.form({
      fields: [ui.field(t("signin.role"), role), ui.field(t("signin.name"), name), piiRow],
      submitLabel: t("signin.submit"),
      onsubmit: async (data) => {
        await api.post("/v1/session/dev", { role: data.get("role"), name: data.get("name"),
                                            pii: data.get("role") === "agent" && pii.checked });
        await boot();
      },
    }));
    name.focus();
  }
}

async function boot() {
  identity = await api.get("/v1/session").catch(() => null);
  await render();
}

whenUnauthorized(() => {
  identity = null;
  renderChrome();
  renderSignIn(t("signin.expired"));
});
window.addEventListener("hashchange", () => { document.getElementById("nav").classList.remove("open"); render(); });
document.getElementById("lang").addEventListener("change", (event) => { setLanguage(event.target.value); render(); });
document.getElementById("sign-out").addEventListener("click", async () => {
  await api.del("/v1/session").catch(() => null);
  identity = null;
  location.hash = "#/sign-in";
  await render();
});
document.getElementById("menu-toggle").addEventListener("click", (event) => {
  const nav = document.getElementById("nav");
  nav.classList.toggle("open");
  event.currentTarget.setAttribute("aria-expanded", String(nav.classList.contains("open")));
});
setLanguage(language());
boot();
