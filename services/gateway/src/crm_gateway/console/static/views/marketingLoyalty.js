// Marketing: what a campaign can offer. The reward catalogue (everyone may read it) and the coupon
// pools a coupon action draws from (staff only: a supervisor's screen). Read-only here: rewards and
// pools are kept by supervisors (the programme screens).
import { h, t, api, ui, formatDate, formatMoney, formatNumber } from "../lib/console.js";

export const messages = {
  en: {
    "marketing.rewards": "Rewards and coupons", "marketing.rewards.catalogue": "Reward catalogue",
    "marketing.rewards.id": "Reward id", "marketing.rewards.name": "Name", "marketing.rewards.kind": "Kind",
    "marketing.rewards.points": "Points", "marketing.rewards.cash": "Cash", "marketing.rewards.stock": "Stock",
    "marketing.rewards.redeemed": "Redeemed", "marketing.rewards.window": "Available", "marketing.rewards.tiers": "Tiers",
    "marketing.rewards.pool": "Coupon pool", "marketing.rewards.active": "Active", "marketing.rewards.inactive": "Inactive",
    "marketing.rewards.unlimited": "Unlimited", "marketing.rewards.any_tier": "All tiers",
    "marketing.pools": "Coupon pools", "marketing.pools.id": "Pool id (for a coupon action)", "marketing.pools.discount": "Discount",
    "marketing.pools.min_spend": "Minimum spend", "marketing.pools.validity": "Valid", "marketing.pools.issued": "Issued",
    "marketing.pools.used": "Used", "marketing.pools.days": "{days} days after issue",
    "marketing.pools.role_note": "Coupon pools are readable by staff only: ask a supervisor for the pool id to use in a coupon action.",
    "marketing.rewards.read_only": "Read-only: supervisors keep rewards and pools.",
  },
  "zh-CN": {
    "marketing.rewards": "奖励与优惠券", "marketing.rewards.catalogue": "奖励目录",
    "marketing.rewards.id": "奖励 ID", "marketing.rewards.name": "名称", "marketing.rewards.kind": "类型",
    "marketing.rewards.points": "积分", "marketing.rewards.cash": "现金", "marketing.rewards.stock": "库存",
    "marketing.rewards.redeemed": "已兑换", "marketing.rewards.window": "可兑换时间", "marketing.rewards.tiers": "等级",
    "marketing.rewards.pool": "优惠券池", "marketing.rewards.active": "启用", "marketing.rewards.inactive": "停用",
    "marketing.rewards.unlimited": "不限", "marketing.rewards.any_tier": "所有等级",
    "marketing.pools": "优惠券池", "marketing.pools.id": "券池 ID（用于优惠券动作）", "marketing.pools.discount": "优惠",
    "marketing.pools.min_spend": "最低消费", "marketing.pools.validity": "有效期", "marketing.pools.issued": "已发放",
    "marketing.pools.used": "已使用", "marketing.pools.days": "发放后 {days} 天",
    "marketing.pools.role_note": "优惠券池仅员工可读：请向主管索取券池 ID 用于优惠券动作。",
    "marketing.rewards.read_only": "只读：奖励和券池由主管维护。",
  },
};

const POOL_LIMIT = 25;
const window_ = (from, until) => (from || until ? `${formatDate(from, false)} – ${formatDate(until, false)}` : "—");

function catalogue() {
  return h("section", { class: "card", "aria-labelledby": "rewards-title" }, h("h2", { id: "rewards-title" },
    t("marketing.rewards.catalogue")), ui.pager({
    load: (cursor) => api.get("/v1/loyalty/rewards", { cursor, limit: 25 }),
    render: (items) => ui.table([
      { key: "reward_id", label: t("marketing.rewards.id") }, { key: "name", label: t("marketing.rewards.name") },
      { key: "kind", label: t("marketing.rewards.kind") },
      { key: "points_price", label: t("marketing.rewards.points"), num: true },
      { key: "cash_price", label: t("marketing.rewards.cash"), num: true,
        render: (row) => (row.cash_price === null ? "—" : formatMoney(row.cash_price, row.cash_currency || "CNY")) },
      { key: "stock", label: t("marketing.rewards.stock"), num: true,
        render: (row) => (row.stock === null ? t("marketing.rewards.unlimited") : formatNumber(row.stock)) },
      { key: "redeemed_count", label: t("marketing.rewards.redeemed"), num: true },
      { key: "eligible_tiers", label: t("marketing.rewards.tiers"),
        render: (row) => (row.eligible_tiers.length ? row.eligible_tiers.join(", ") : t("marketing.rewards.any_tier")) },
      { key: "window", label: t("marketing.rewards.window"), render: (row) => window_(row.available_from, row.available_until) },
      { key: "coupon_pool_id", label: t("marketing.rewards.pool") }], items),
  }));
}

function discount(pool) {
  if (pool.discount_kind === "percent") return `${formatNumber(Number(pool.percent))} %`;
  return pool.amount === null ? pool.discount_kind : formatMoney(pool.amount, pool.currency || "CNY");
}

function pools() {
  const card = h("section", { class: "card", "aria-labelledby": "pools-title" }, h("h2", { id: "pools-title" }, t("marketing.pools")));
  card.append(ui.pager({
    // By pool id, a page at a time with the API's cursor.
    load: (cursor) => api.get("/v1/loyalty/coupon-pools", { limit: POOL_LIMIT, cursor }),
    render: (items) => ui.table([
      { key: "pool_id", label: t("marketing.pools.id"), render: (row) => h("code", {}, row.pool_id) },
      { key: "name", label: t("marketing.rewards.name") },
      { key: "discount", label: t("marketing.pools.discount"), render: discount },
      { key: "min_spend", label: t("marketing.pools.min_spend"), num: true,
        render: (row) => (row.min_spend === null ? "—" : formatMoney(row.min_spend, row.currency || "CNY")) },
      { key: "validity", label: t("marketing.pools.validity"), render: (row) => (row.validity_days
        ? t("marketing.pools.days", { days: row.validity_days }) : window_(row.valid_from, row.valid_until)) },
      { key: "issued_count", label: t("marketing.pools.issued"), num: true },
      { key: "used_count", label: t("marketing.pools.used"), num: true },
      { key: "active", label: t("marketing.rewards.active"), render: (row) => ui.badge(
        t(row.active ? "marketing.rewards.active" : "marketing.rewards.inactive"), row.active ? "ok" : "") }], items),
  }));
  return card;
}

async function rewards(main, params, ctx) {
  main.append(h("h1", {}, t("marketing.rewards")), h("p", { class: "muted" }, t("marketing.rewards.read_only")), catalogue(),
    ctx.identity.role === "supervisor" ? pools() : h("p", { class: "card muted", role: "note" }, t("marketing.pools.role_note")));
}

export const routes = [
  { path: "/marketing/rewards", nav: "marketing.rewards", group: "marketing", roles: ["marketer", "supervisor"], render: rewards },
];
