// What a view module imports: one place, so views do not depend on how the shell is split.
export { api, ApiError } from "./api.js";
export { append, clear, h, navigate } from "./dom.js";
export { formatDate, formatMoney, formatNumber, language, t } from "./i18n.js";
export { ui } from "./ui.js";
