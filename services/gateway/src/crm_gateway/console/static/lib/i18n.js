// Two languages, en and zh-CN. The browser's language decides until the user picks one; the pick
// is the only thing the console keeps in localStorage.
const catalogues = { en: {}, "zh-CN": {} };
const STORAGE_KEY = "crm.console.lang";
let current = pickDefault();

function pickDefault() {
  const stored = localStorage.getItem(STORAGE_KEY);
  if (stored && stored in catalogues) return stored;
  return (navigator.languages || [navigator.language || "en"]).some((l) => l.toLowerCase().startsWith("zh"))
    ? "zh-CN" : "en";
}

export function addMessages(messages) {
  for (const [lang, entries] of Object.entries(messages || {})) {
    if (lang in catalogues) Object.assign(catalogues[lang], entries);
  }
}

export function language() { return current; }

export function setLanguage(lang) {
  if (!(lang in catalogues)) return;
  current = lang;
  localStorage.setItem(STORAGE_KEY, lang);
  document.documentElement.lang = lang;
}

export function t(key, vars) {
  const text = catalogues[current][key] ?? catalogues.en[key] ?? key;
  return vars ? text.replace(/\{(\w+)\}/g, (whole, name) => (name in vars ? String(vars[name]) : whole)) : text;
}

// Numbers, money and dates in the user's language.
export function formatNumber(value, options) {
  return value === null || value === undefined ? "—" : new Intl.NumberFormat(current, options).format(value);
}

export function formatMoney(value, currency = "CNY") {
  return formatNumber(Number(value), { style: "currency", currency });
}

export function formatDate(value, withTime = true) {
  if (!value) return "—";
  const date = new Date(value);
  return withTime ? date.toLocaleString(current, { dateStyle: "medium", timeStyle: "short" })
    : date.toLocaleDateString(current, { dateStyle: "medium" });
}
