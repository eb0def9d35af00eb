// Supervision: the loyalty programme and the ticketing SLA policy, each one versioned document read
// with GET and saved whole with PUT (If-Match: the version read, so a concurrent change is not lost).
// The API validates; its problem (title, detail, the fields it refused) is shown as it states it.
import { h, t, api, ui, ApiError, formatDate } from "../lib/console.js";

export const messages = {
  en: {
    "supervision.settings.programme": "Loyalty programme", "supervision.settings.sla": "SLA policy",
    "supervision.settings.version": "Version {version}, saved by {by} on {when}",
    "supervision.settings.note_was": "Note: {note}", "supervision.settings.main": "Main settings",
    "supervision.settings.json": "The whole document (JSON)",
    "supervision.settings.json_hint": "Everything the API accepts; it checks the document when you save.",
    "supervision.settings.bad_json": "This is not valid JSON", "supervision.settings.saved": "Saved: version {version}",
    "supervision.settings.note": "Note for this version (optional)", "supervision.settings.blank_none": "blank for none",
    "supervision.settings.tiers": "Tiers", "supervision.settings.tier": "Tier", "supervision.settings.min_spend": "Minimum spend",
    "supervision.settings.min_orders": "Minimum orders", "supervision.settings.multiplier": "Multiplier",
    "supervision.settings.birthday_bonus": "Birthday bonus", "supervision.settings.campaigns": "Points campaigns",
    "supervision.p.earning.expiry_months": "Points expire after (months)",
    "supervision.p.earning.return_window_days": "Return window (days, points pending)",
    "supervision.p.earning.max_points_per_order": "Most points per order",
    "supervision.p.redemption.min_points": "Fewest points per redemption",
    "supervision.p.redemption.max_order_share": "Largest share of an order paid in points (0–1)",
    "supervision.p.adjustments.agent_limit": "Agent limit per adjustment (points)",
    "supervision.p.adjustments.agent_period_limit": "Agent allowance per period (points)",
    "supervision.p.adjustments.agent_period_hours": "Allowance period (hours)",
    "supervision.p.adjustments.supervisor_limit": "Supervisor limit per adjustment (points)",
    "supervision.p.notices.expiry_notice_days": "Expiry notice (days before)",
    "supervision.s.calendar.timezone": "Time zone", "supervision.s.warning_at": "Warning at (share of the target, 0–1)",
    "supervision.s.reopen_days": "Reopen within (days)", "supervision.s.follow_up_due_hours": "Key-customer follow-up due within (hours)",
    "supervision.s.follow_up_period_days": "At most one follow-up per customer in (days)",
    "supervision.s.targets": "SLA targets (business minutes)", "supervision.s.priority": "Priority", "supervision.s.tier": "Tier",
    "supervision.s.any_tier": "any", "supervision.s.first_response": "First response", "supervision.s.resolution": "Resolution",
    "supervision.s.target_label": "{what} for {priority} / {tier}",
    "supervision.s.calendar": "Business hours", "supervision.s.holidays": "Holidays", "supervision.s.closed": "closed",
    "supervision.s.day.0": "Monday", "supervision.s.day.1": "Tuesday", "supervision.s.day.2": "Wednesday", "supervision.s.day.3": "Thursday",
    "supervision.s.day.4": "Friday", "supervision.s.day.5": "Saturday", "supervision.s.day.6": "Sunday",
    "supervision.s.category_priority": "Priority by category",
  },
  "zh-CN": {
    "supervision.settings.programme": "积分方案", "supervision.settings.sla": "SLA 策略",
    "supervision.settings.version": "版本 {version}，由 {by} 于 {when} 保存",
    "supervision.settings.note_was": "备注：{note}", "supervision.settings.main": "主要设置",
    "supervision.settings.json": "完整文档（JSON）",
    "supervision.settings.json_hint": "API 接受的全部内容；保存时由 API 校验。",
    "supervision.settings.bad_json": "不是有效的 JSON", "supervision.settings.saved": "已保存：版本 {version}",
    "supervision.settings.note": "本版本备注（可选）", "supervision.settings.blank_none": "留空表示不限",
    "supervision.settings.tiers": "会员等级", "supervision.settings.tier": "等级", "supervision.settings.min_spend": "最低消费",
    "supervision.settings.min_orders": "最少订单数", "supervision.settings.multiplier": "倍数",
    "supervision.settings.birthday_bonus": "生日奖励", "supervision.settings.campaigns": "积分活动",
    "supervision.p.earning.expiry_months": "积分有效期（月）",
    "supervision.p.earning.return_window_days": "退货期（天，积分待生效）",
    "supervision.p.earning.max_points_per_order": "每单最多积分",
    "supervision.p.redemption.min_points": "每次兑换最少积分",
    "supervision.p.redemption.max_order_share": "积分可抵扣订单的最大比例（0–1）",
    "supervision.p.adjustments.agent_limit": "客服单次调整上限（积分）",
    "supervision.p.adjustments.agent_period_limit": "客服每周期额度（积分）",
    "supervision.p.adjustments.agent_period_hours": "额度周期（小时）",
    "supervision.p.adjustments.supervisor_limit": "主管单次调整上限（积分）",
    "supervision.p.notices.expiry_notice_days": "过期提醒（提前天数）",
    "supervision.s.calendar.timezone": "时区", "supervision.s.warning_at": "预警点（目标的比例，0–1）",
    "supervision.s.reopen_days": "可重开期限（天）", "supervision.s.follow_up_due_hours": "重点客户回访时限（小时）",
    "supervision.s.follow_up_period_days": "每位客户回访最少间隔（天）",
    "supervision.s.targets": "SLA 目标（工作分钟）", "supervision.s.priority": "优先级", "supervision.s.tier": "等级",
    "supervision.s.any_tier": "任意", "supervision.s.first_response": "首次响应", "supervision.s.resolution": "解决",
    "supervision.s.target_label": "{priority} / {tier} 的{what}",
    "supervision.s.calendar": "工作时间", "supervision.s.holidays": "节假日", "supervision.s.closed": "休息",
    "supervision.s.day.0": "周一", "supervision.s.day.1": "周二", "supervision.s.day.2": "周三", "supervision.s.day.3": "周四",
    "supervision.s.day.4": "周五", "supervision.s.day.5": "周六", "supervision.s.day.6": "周日",
    "supervision.s.category_priority": "按类别的优先级",
  },
};

const get = (object, path) => path.split(".").reduce((o, k) => (o == null ? o : o[k]), object);
function set(object, path, value) {
  const keys = path.split(".");
  const last = keys.pop();
  keys.reduce((o, k) => o[k], object)[last] = value;
}

// A form value as the document holds it: integers as numbers, decimals as the text typed (the API
// reads both; text keeps "0.50" exact), blank as null where the document allows none.
function parse(raw, kind) {
  const text = raw.trim();
  if (text === "" && kind.endsWith("?")) return null;
  if (kind.startsWith("int")) return /^-?\d+$/.test(text) ? Number(text) : text;
  return text;
}

function numberInput(name, value, label) {
  return h("input", { name, inputmode: "decimal", autocomplete: "off", value: value ?? "", "aria-label": label || null });
}

function versionLine(doc) {
  return h("p", { class: "muted" }, t("supervision.settings.version", { version: doc.version, by: doc.created_by,
    when: formatDate(doc.created_at) }), doc.note ? [" · ", t("supervision.settings.note_was", { note: doc.note })] : null);
}

// The whole document as JSON, for what the main form does not cover.
function jsonForm(config, save, extra) {
  const text = h("textarea", { name: "document", class: "supervision-json", spellcheck: "false", rows: 18,
                               value: JSON.stringify(config, null, 2) });
  return h("details", { class: "card" }, h("summary", {}, t("supervision.settings.json")),
    ui.form({ fields: [ui.field(t("supervision.settings.json"), text, t("supervision.settings.json_hint")), extra ? extra() : null],
      onsubmit: async (data) => {
        let parsed;
        try {
          parsed = JSON.parse(data.get("document"));
        } catch (error) {
          throw new ApiError(0, { title: t("supervision.settings.bad_json"), detail: error.message });
        }
        await save(parsed, data);
      } }));
}

async function saveAndReload(path, body, version, render) {
  const saved = await api.put(path, body, { headers: { "if-match": String(version) } });
  ui.toast(t("supervision.settings.saved", { version: saved.version }));
  await render();
}

// -- the loyalty programme -------------------------------------------------------------------------

const PROGRAMME_FIELDS = [["earning.expiry_months", "int"], ["earning.return_window_days", "int"],
  ["earning.max_points_per_order", "int?"], ["redemption.min_points", "int"], ["redemption.max_order_share", "decimal"],
  ["adjustments.agent_limit", "int"], ["adjustments.agent_period_limit", "int?"], ["adjustments.agent_period_hours", "int"],
  ["adjustments.supervisor_limit", "int"], ["notices.expiry_notice_days", "int"]];

async function programme(main) {
  const render = async () => {
    main.replaceChildren(h("h1", {}, t("supervision.settings.programme")));
    await ui.load(main, async () => {
      const doc = await api.get("/v1/loyalty/programme");
      const save = (config, data) => saveAndReload("/v1/loyalty/programme",
        { config, note: (data.get("note") || "").trim() || null }, doc.version, render);
      const note = () => ui.field(t("supervision.settings.note"), h("input", { name: "note", maxlength: 500, autocomplete: "off" }));
      const tiers = doc.config.tiers.levels;
      return h("div", {}, versionLine(doc),
        h("section", { class: "card", "aria-labelledby": "sup-p-main" }, h("h2", { id: "sup-p-main" }, t("supervision.settings.main")),
          ui.form({ fields: [h("div", { class: "supervision-fields" }, PROGRAMME_FIELDS.map(([path, kind]) => ui.field(
            t(`supervision.p.${path}`), numberInput(path, get(doc.config, path)),
            kind.endsWith("?") ? t("supervision.settings.blank_none") : null))), note()],
          onsubmit: (data) => {
            const config = structuredClone(doc.config);
            for (const [path, kind] of PROGRAMME_FIELDS) set(config, path, parse(data.get(path), kind));
            return save(config, data);
          } })),
        h("section", { class: "card", "aria-labelledby": "sup-p-tiers" }, h("h2", { id: "sup-p-tiers" }, t("supervision.settings.tiers")),
          ui.table([{ key: "name", label: t("supervision.settings.tier") },
            { key: "min_spend", label: t("supervision.settings.min_spend"), num: true, render: (r) => `${r.min_spend} ${doc.config.tiers.currency}` },
            { key: "min_orders", label: t("supervision.settings.min_orders"), num: true },
            { key: "multiplier", label: t("supervision.settings.multiplier"), num: true, render: (r) => `× ${r.multiplier}` },
            { key: "birthday_bonus", label: t("supervision.settings.birthday_bonus"), num: true }], tiers),
          doc.config.campaigns.length ? [h("h3", {}, t("supervision.settings.campaigns")), ui.table([
            { key: "id", label: "id" }, { key: "name", label: t("supervision.approvals.name") },
            { key: "starts_at", label: t("supervision.since"), render: (r) => formatDate(r.starts_at) },
            { key: "ends_at", label: t("supervision.until"), render: (r) => formatDate(r.ends_at) },
            { key: "extra_multiplier", label: t("supervision.settings.multiplier"), num: true,
              render: (r) => `× ${r.extra_multiplier}` }], doc.config.campaigns)] : null),
        jsonForm(doc.config, save, note));
    });
  };
  await render();
}

// -- the ticketing SLA policy ----------------------------------------------------------------------

const SLA_FIELDS = [["calendar.timezone", "text"], ["warning_at", "decimal"], ["reopen_days", "int"],
  ["follow_up_due_hours", "int"], ["follow_up_period_days", "int"]];

function targetsTable(sla) {
  const label = (what, row) => t("supervision.s.target_label", { what, priority: row.priority, tier: row.tier ?? t("supervision.s.any_tier") });
  return ui.table([
    { key: "priority", label: t("supervision.s.priority"), render: (r) => ui.badge(r.priority, r.priority) },
    { key: "tier", label: t("supervision.s.tier"), render: (r) => r.tier ?? t("supervision.s.any_tier") },
    { key: "first_response_minutes", label: t("supervision.s.first_response"),
      render: (r) => numberInput(`sla.${sla.indexOf(r)}.first_response_minutes`, r.first_response_minutes, label(t("supervision.s.first_response"), r)) },
    { key: "resolution_minutes", label: t("supervision.s.resolution"),
      render: (r) => numberInput(`sla.${sla.indexOf(r)}.resolution_minutes`, r.resolution_minutes, label(t("supervision.s.resolution"), r)) }],
  sla, { caption: t("supervision.s.targets") });
}

function calendarSummary(config) {
  const week = config.calendar.week;
  return h("section", { class: "card", "aria-labelledby": "sup-s-calendar" }, h("h2", { id: "sup-s-calendar" }, t("supervision.s.calendar")),
    h("dl", { class: "kv" }, [0, 1, 2, 3, 4, 5, 6].map((day) => [h("dt", {}, t(`supervision.s.day.${day}`)),
      h("dd", {}, (week[day] || week[String(day)] || []).map((hours) => `${hours.start.slice(0, 5)}–${hours.end.slice(0, 5)}`).join(", ")
        || t("supervision.s.closed"))]),
    h("dt", {}, t("supervision.s.holidays")), h("dd", {}, config.calendar.holidays.join(", ") || t("common.none")),
    h("dt", {}, t("supervision.s.category_priority")),
    h("dd", {}, Object.entries(config.category_priority).map(([c, p]) => `${c}: ${p}`).join(", "))));
}

async function slaPolicy(main) {
  const render = async () => {
    main.replaceChildren(h("h1", {}, t("supervision.settings.sla")));
    await ui.load(main, async () => {
      const doc = await api.get("/v1/ticketing/policy");
      const save = (config) => saveAndReload("/v1/ticketing/policy", { config }, doc.version, render);
      return h("div", {}, versionLine(doc),
        h("section", { class: "card", "aria-labelledby": "sup-s-main" }, h("h2", { id: "sup-s-main" }, t("supervision.settings.main")),
          ui.form({ fields: [h("div", { class: "supervision-fields" }, SLA_FIELDS.map(([path, kind]) => ui.field(
            t(`supervision.s.${path}`), kind === "text" ? h("input", { name: path, value: get(doc.config, path), autocomplete: "off" })
              : numberInput(path, get(doc.config, path))))),
          h("h3", {}, t("supervision.s.targets")), targetsTable(doc.config.sla)],
          onsubmit: (data) => {
            const config = structuredClone(doc.config);
            for (const [path, kind] of SLA_FIELDS) set(config, path, kind === "text" ? data.get(path).trim() : parse(data.get(path), kind));
            config.sla.forEach((target, i) => {
              for (const key of ["first_response_minutes", "resolution_minutes"]) target[key] = parse(data.get(`sla.${i}.${key}`), "int");
            });
            return save(config);
          } })),
        calendarSummary(doc.config),
        jsonForm(doc.config, (config) => save(config)));
    });
  };
  await render();
}

export const routes = [
  { path: "/settings/programme", nav: "supervision.settings.programme", group: "supervision", roles: ["supervisor"],
    render: (main) => programme(main) },
  { path: "/settings/sla", nav: "supervision.settings.sla", group: "supervision", roles: ["supervisor"],
    render: (main) => slaPolicy(main) },
];
