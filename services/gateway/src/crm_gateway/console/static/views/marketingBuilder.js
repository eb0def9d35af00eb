// Marketing: the campaign builder. Audience (a definition, then its size), template (per channel,
// zh-CN and en, with a preview), schedule or trigger, control share; then the campaign is created
// and activated (above the approval size it waits for a supervisor). Counts and ids only: the
// campaigns API shows a marketer no customer's data.
import { h, t, api, ui, formatNumber, formatDate } from "../lib/console.js";

const RFM = ["champions", "loyal", "potential", "new", "at_risk", "cannot_lose", "hibernating", "lost"];
const CHURN = ["low", "medium", "high"];
const LOCALES = ["en", "zh-CN"];
const OCCASIONS = ["birthday", "holiday", "member_day", "anniversary"];
const TRIGGERS = ["segment_entered", "churn_high", "ticket_resolved", "order_completed", "tier_changed", "notification"];
const CHANNELS = ["email", "sms"];

export const messages = {
  en: {
    "marketing.builder": "New campaign", "marketing.builder.intro": "Build the audience, the message and the schedule, then activate.",
    "marketing.step.audience": "1. Audience", "marketing.step.template": "2. Message", "marketing.step.schedule": "3. Schedule and rules",
    "marketing.audience.name": "Audience name", "marketing.audience.rfm": "RFM segments", "marketing.audience.churn": "Churn risk levels",
    "marketing.audience.tiers": "Tiers (comma-separated)", "marketing.audience.segments": "Segment ids, any of (comma-separated)",
    "marketing.audience.birthday_month": "Birthday month", "marketing.audience.any": "Any",
    "marketing.audience.locales": "Languages", "marketing.audience.value_min": "Spent at least",
    "marketing.audience.orders_min": "Orders at least", "marketing.audience.no_order_for_days": "No order for (days)",
    "marketing.audience.save": "Save audience and estimate", "marketing.audience.saved": "Audience {id} saved.",
    "marketing.audience.size": "{size} customers match now and consent to {channel}",
    "marketing.audience.consent_note": "The channel's consent is always required.",
    "marketing.template.name": "Template name", "marketing.template.channel": "Channel",
    "marketing.template.subject": "Subject ({locale})", "marketing.template.text": "Text ({locale})",
    "marketing.template.html": "HTML ({locale})", "marketing.template.variables": "Variables: {list}",
    "marketing.template.save": "Save template", "marketing.template.saved": "Template {id} saved.",
    "marketing.template.preview": "Preview", "marketing.template.preview_locale": "Preview language",
    "marketing.template.preview_of": "Preview ({locale}) with a sample customer",
    "marketing.template.save_first": "Save the template first.",
    "marketing.preview.subject": "Subject", "marketing.preview.text": "Text", "marketing.preview.html": "HTML source",
    "marketing.campaign.name": "Campaign name", "marketing.campaign.kind": "Kind",
    "marketing.kind.one_shot": "One-shot", "marketing.kind.recurring": "Recurring (care calendar)",
    "marketing.kind.triggered": "Triggered journey",
    "marketing.schedule.when": "When", "marketing.schedule.now": "As soon as activated", "marketing.schedule.at": "At a time",
    "marketing.schedule.send_at": "Send at (your time zone)", "marketing.schedule.occasion": "Occasion",
    "marketing.occasion.birthday": "Birthday", "marketing.occasion.holiday": "Holidays",
    "marketing.occasion.member_day": "Member day", "marketing.occasion.anniversary": "Registration anniversary",
    "marketing.schedule.calendars": "Holiday calendars", "marketing.schedule.day_of_month": "Day of month (1–28)",
    "marketing.schedule.local_time": "Local send time (customer's zone)", "marketing.schedule.trigger": "Trigger",
    "marketing.trigger.segment_entered": "Entered a segment", "marketing.trigger.churn_high": "Churn risk turned high",
    "marketing.trigger.ticket_resolved": "Ticket resolved", "marketing.trigger.order_completed": "Order completed",
    "marketing.trigger.tier_changed": "Tier changed", "marketing.trigger.notification": "Loyalty or tickets notification",
    "marketing.schedule.match": "Only for (comma-separated values)", "marketing.schedule.wait": "Wait (minutes)",
    "marketing.rules.control": "Control group share (%)", "marketing.rules.control_hint": "0–50 %: kept out to measure lift.",
    "marketing.campaign.activate": "Create and activate", "marketing.campaign.need": "Save the audience and the template first.",
    "marketing.campaign.created": "Campaign {id}: {status}",
    "marketing.campaign.awaiting": "Above the approval size ({size} customers): the campaign waits for a supervisor's approval.",
    "marketing.campaign.active": "The campaign is active ({size} customers).",
    "marketing.campaign.results": "Open its results",
  },
  "zh-CN": {
    "marketing.builder": "新建活动", "marketing.builder.intro": "设置受众、消息和发送计划，然后启动。",
    "marketing.step.audience": "1. 受众", "marketing.step.template": "2. 消息", "marketing.step.schedule": "3. 计划与规则",
    "marketing.audience.name": "受众名称", "marketing.audience.rfm": "RFM 分群", "marketing.audience.churn": "流失风险等级",
    "marketing.audience.tiers": "会员等级（逗号分隔）", "marketing.audience.segments": "分群 ID，任一（逗号分隔）",
    "marketing.audience.birthday_month": "生日月份", "marketing.audience.any": "不限",
    "marketing.audience.locales": "语言", "marketing.audience.value_min": "消费至少",
    "marketing.audience.orders_min": "订单至少", "marketing.audience.no_order_for_days": "未下单天数",
    "marketing.audience.save": "保存受众并估算", "marketing.audience.saved": "受众 {id} 已保存。",
    "marketing.audience.size": "当前有 {size} 位客户符合条件并同意接收{channel}",
    "marketing.audience.consent_note": "始终要求客户同意该渠道。",
    "marketing.template.name": "模板名称", "marketing.template.channel": "渠道",
    "marketing.template.subject": "主题（{locale}）", "marketing.template.text": "文本（{locale}）",
    "marketing.template.html": "HTML（{locale}）", "marketing.template.variables": "变量：{list}",
    "marketing.template.save": "保存模板", "marketing.template.saved": "模板 {id} 已保存。",
    "marketing.template.preview": "预览", "marketing.template.preview_locale": "预览语言",
    "marketing.template.preview_of": "预览（{locale}），使用示例客户",
    "marketing.template.save_first": "请先保存模板。",
    "marketing.preview.subject": "主题", "marketing.preview.text": "文本", "marketing.preview.html": "HTML 源码",
    "marketing.campaign.name": "活动名称", "marketing.campaign.kind": "类型",
    "marketing.kind.one_shot": "单次", "marketing.kind.recurring": "周期（关怀日历）", "marketing.kind.triggered": "触发旅程",
    "marketing.schedule.when": "时间", "marketing.schedule.now": "启动后立即", "marketing.schedule.at": "指定时间",
    "marketing.schedule.send_at": "发送时间（您的时区）", "marketing.schedule.occasion": "场景",
    "marketing.occasion.birthday": "生日", "marketing.occasion.holiday": "节日",
    "marketing.occasion.member_day": "会员日", "marketing.occasion.anniversary": "注册周年",
    "marketing.schedule.calendars": "节日日历", "marketing.schedule.day_of_month": "每月几号（1–28）",
    "marketing.schedule.local_time": "当地发送时间（客户时区）", "marketing.schedule.trigger": "触发条件",
    "marketing.trigger.segment_entered": "进入分群", "marketing.trigger.churn_high": "流失风险变高",
    "marketing.trigger.ticket_resolved": "工单已解决", "marketing.trigger.order_completed": "订单完成",
    "marketing.trigger.tier_changed": "等级变化", "marketing.trigger.notification": "积分或工单通知",
    "marketing.schedule.match": "仅限（逗号分隔的值）", "marketing.schedule.wait": "等待（分钟）",
    "marketing.rules.control": "对照组比例（%）", "marketing.rules.control_hint": "0–50 %：不发送，用于衡量提升。",
    "marketing.campaign.activate": "创建并启动", "marketing.campaign.need": "请先保存受众和模板。",
    "marketing.campaign.created": "活动 {id}：{status}",
    "marketing.campaign.awaiting": "超过审批规模（{size} 位客户）：活动等待主管审批。",
    "marketing.campaign.active": "活动已启动（{size} 位客户）。",
    "marketing.campaign.results": "查看结果",
  },
};

const list = (value) => String(value || "").split(",").map((s) => s.trim()).filter(Boolean);
const checkboxes = (name, values, label) => h("fieldset", { class: "field checks" }, h("legend", {}, label),
  values.map((v) => h("label", {}, h("input", { type: "checkbox", name, value: v }), ` ${label === null ? v : tOr(name, v)}`)));
const tOr = (name, value) => { const key = `marketing.${name}.${value}`; const text = t(key); return text === key ? value : text; };
const select = (name, values, labelOf, attrs = {}) => h("select", { name, ...attrs },
  values.map(([v, text]) => h("option", { value: v }, labelOf ? labelOf(v) : text)));

function audienceDefinition(data) {
  const definition = {};
  const many = (key, field) => { const v = data.getAll(field); if (v.length) definition[key] = v; };
  many("rfm_segments", "rfm"); many("churn_levels", "churn"); many("locales", "locale");
  if (list(data.get("tiers")).length) definition.tiers = list(data.get("tiers"));
  if (list(data.get("segments")).length) definition.segments_any = list(data.get("segments"));
  if (data.get("birthday_month")) definition.birthday_month = Number(data.get("birthday_month"));
  if (data.get("value_min")) definition.value_min = data.get("value_min");
  if (data.get("orders_min")) definition.orders_min = Number(data.get("orders_min"));
  if (data.get("no_order_for_days")) definition.no_order_for_days = Number(data.get("no_order_for_days"));
  return definition;
}

function audienceStep(state) {
  const size = h("p", { class: "estimate", "aria-live": "polite" });
  const months = [["", t("marketing.audience.any")], ...Array.from({ length: 12 }, (_, i) => [String(i + 1), String(i + 1)])];
  const form = ui.form({
    submitLabel: t("marketing.audience.save"),
    fields: [
      ui.field(t("marketing.audience.name"), h("input", { name: "audience_name", required: true, maxlength: 200 })),
      h("div", { class: "grid" },
        checkboxes("rfm", RFM, t("marketing.audience.rfm")), checkboxes("churn", CHURN, t("marketing.audience.churn")),
        checkboxes("locale", LOCALES, t("marketing.audience.locales"))),
      h("div", { class: "row" },
        ui.field(t("marketing.audience.birthday_month"), select("birthday_month", months)),
        ui.field(t("marketing.audience.tiers"), h("input", { name: "tiers", autocomplete: "off" })),
        ui.field(t("marketing.audience.segments"), h("input", { name: "segments", autocomplete: "off" }))),
      h("div", { class: "row" },
        ui.field(t("marketing.audience.value_min"), h("input", { name: "value_min", type: "number", min: 0, step: "0.01" })),
        ui.field(t("marketing.audience.orders_min"), h("input", { name: "orders_min", type: "number", min: 0 })),
        ui.field(t("marketing.audience.no_order_for_days"), h("input", { name: "no_order_for_days", type: "number", min: 1 }))),
      h("p", { class: "muted" }, t("marketing.audience.consent_note")),
    ],
    onsubmit: async (data) => {
      size.replaceChildren();
      const audience = await api.post("/v1/audiences", { name: data.get("audience_name"), definition: audienceDefinition(data) });
      state.audience = audience;
      await estimate(state, size);
    },
  });
  state.reestimate = () => estimate(state, size);
  return h("section", { class: "card", "aria-labelledby": "step-audience" },
    h("h2", { id: "step-audience" }, t("marketing.step.audience")), form, size);
}

async function estimate(state, size) {
  if (!state.audience) return;
  size.replaceChildren(ui.loading());
  try {
    const answer = await api.get(`/v1/audiences/${encodeURIComponent(state.audience.audience_id)}/estimate`,
                                 { channel: state.channel() });
    size.replaceChildren(h("span", {}, t("marketing.audience.saved", { id: state.audience.audience_id }), " "),
      h("strong", { "data-estimate": answer.size, "data-audience-id": answer.audience_id }, t("marketing.audience.size", {
        size: formatNumber(answer.size), channel: answer.channel })), h("small", { class: "muted" }, ` · ${formatDate(answer.as_of)}`));
  } catch (error) {
    size.replaceChildren(ui.problem(error));
  }
}

function templateStep(state) {
  const channel = select("channel", CHANNELS.map((c) => [c, c]), null, { id: "template-channel" });
  const parts = h("div", { class: "grid" });
  const drawParts = () => parts.replaceChildren(...LOCALES.map((locale) => h("fieldset", { class: "locale" },
    h("legend", {}, locale),
    channel.value === "email" ? ui.field(t("marketing.template.subject", { locale }),
      h("input", { name: `subject:${locale}`, maxlength: 500 })) : null,
    ui.field(t("marketing.template.text", { locale }), h("textarea", { name: `text:${locale}` })),
    channel.value === "email" ? ui.field(t("marketing.template.html", { locale }), h("textarea", { name: `html:${locale}` })) : null)));
  channel.addEventListener("change", () => { drawParts(); state.template = null; state.reestimate(); });
  drawParts();
  state.channel = () => channel.value;
  const previewLocale = select("preview_locale", LOCALES.map((l) => [l, l]), null, { id: "preview-locale" });
  const preview = h("div", { class: "preview", "aria-live": "polite" });
  const previewButton = h("button", { type: "button", class: "secondary", onclick: async () => {
    if (!state.template) { preview.replaceChildren(h("p", { class: "problem", role: "alert" }, t("marketing.template.save_first"))); return; }
    preview.replaceChildren(ui.loading());
    try {
      const shown = await api.post(`/v1/templates/${encodeURIComponent(state.template.template_id)}/preview`,
                                   { locale: previewLocale.value });
      // The rendered HTML is shown as its source text: never parsed into this page.
      preview.replaceChildren(h("h3", {}, t("marketing.template.preview_of", { locale: shown.locale })), h("dl", { class: "kv" },
        shown.subject !== null ? [h("dt", {}, t("marketing.preview.subject")), h("dd", { "data-part": "subject" }, shown.subject)] : null,
        shown.text !== null ? [h("dt", {}, t("marketing.preview.text")), h("dd", {}, h("pre", { "data-part": "text" }, shown.text))] : null,
        shown.html !== null ? [h("dt", {}, t("marketing.preview.html")), h("dd", {}, h("pre", { "data-part": "html" }, shown.html))] : null));
    } catch (error) {
      preview.replaceChildren(ui.problem(error));
    }
  } }, t("marketing.template.preview"));
  const form = ui.form({
    submitLabel: t("marketing.template.save"),
    fields: [h("div", { class: "row" },
      ui.field(t("marketing.template.name"), h("input", { name: "template_name", required: true, maxlength: 200 })),
      ui.field(t("marketing.template.channel"), channel)), parts,
      h("p", { class: "muted" }, t("marketing.template.variables", { list: "{{ name }}, {{ tier }}, {{ points_balance }}, "
        + "{{ points_expiring }}, {{ coupon_code }}, {{ unsubscribe_url }}, {{ campaign_name }}, {{ shop_name }}" }))],
    secondary: h("span", { class: "row" }, ui.field(t("marketing.template.preview_locale"), previewLocale), previewButton),
    onsubmit: async (data, element) => {
      const contents = {};
      for (const locale of LOCALES) {
        const entry = {};
        for (const part of ["subject", "text", "html"]) {
          const value = data.get(`${part}:${locale}`);
          if (value) entry[part] = value;
        }
        if (Object.keys(entry).length) contents[locale] = entry;
      }
      state.template = await api.post("/v1/templates", { name: data.get("template_name"), channel: channel.value, contents });
      ui.toast(t("marketing.template.saved", { id: state.template.template_id }));
      element.querySelector("[data-saved]")?.remove();
      element.append(h("p", { class: "muted", "data-saved": state.template.template_id },
        t("marketing.template.saved", { id: state.template.template_id })));
      state.reestimate();
    },
  });
  return h("section", { class: "card", "aria-labelledby": "step-template" },
    h("h2", { id: "step-template" }, t("marketing.step.template")), form, preview);
}

function scheduleFields(kind) {
  if (kind === "one_shot") {
    const at = h("input", { name: "send_at", type: "datetime-local", disabled: true });
    const when = select("when", [["now", ""], ["at", ""]], (v) => t(`marketing.schedule.${v}`), { id: "schedule-when" });
    when.addEventListener("change", () => { at.disabled = when.value !== "at"; at.required = when.value === "at"; });
    return h("div", { class: "row" }, ui.field(t("marketing.schedule.when"), when), ui.field(t("marketing.schedule.send_at"), at));
  }
  if (kind === "recurring") {
    const occasion = select("occasion", OCCASIONS.map((o) => [o, o]), (v) => t(`marketing.occasion.${v}`));
    const calendars = checkboxes("calendars", ["CN", "WESTERN"], t("marketing.schedule.calendars"));
    const day = h("input", { name: "day_of_month", type: "number", min: 1, max: 28 });
    const sync = () => { calendars.hidden = occasion.value !== "holiday"; day.disabled = occasion.value !== "member_day"; };
    occasion.addEventListener("change", sync);
    sync();
    return h("div", { class: "row" }, ui.field(t("marketing.schedule.occasion"), occasion), calendars,
      ui.field(t("marketing.schedule.day_of_month"), day),
      ui.field(t("marketing.schedule.local_time"), h("input", { name: "send_local_time", type: "time", value: "09:00" })));
  }
  return h("div", { class: "row" },
    ui.field(t("marketing.schedule.trigger"), select("trigger", TRIGGERS.map((v) => [v, v]), (v) => t(`marketing.trigger.${v}`))),
    ui.field(t("marketing.schedule.match"), h("input", { name: "match", autocomplete: "off" })),
    ui.field(t("marketing.schedule.wait"), h("input", { name: "wait_minutes", type: "number", min: 0, value: "0" })));
}

function schedule(kind, data) {
  if (kind === "one_shot") {
    return data.get("when") === "at" && data.get("send_at") ? { send_at: new Date(data.get("send_at")).toISOString() } : {};
  }
  if (kind === "recurring") {
    const occasion = data.get("occasion");
    return { occasion, send_local_time: data.get("send_local_time") || "09:00",
             ...(occasion === "holiday" ? { calendars: data.getAll("calendars") } : {}),
             ...(occasion === "member_day" ? { day_of_month: Number(data.get("day_of_month")) } : {}) };
  }
  const match = list(data.get("match"));
  return { trigger: data.get("trigger"), wait_s: Number(data.get("wait_minutes") || 0) * 60, ...(match.length ? { match } : {}) };
}

function campaignStep(state, outcome) {
  const kind = select("kind", ["one_shot", "recurring", "triggered"].map((k) => [k, k]), (v) => t(`marketing.kind.${v}`),
                      { id: "campaign-kind" });
  const when = h("div", {}, scheduleFields(kind.value));
  kind.addEventListener("change", () => when.replaceChildren(scheduleFields(kind.value)));
  const form = ui.form({
    submitLabel: t("marketing.campaign.activate"),
    fields: [h("div", { class: "row" },
      ui.field(t("marketing.campaign.name"), h("input", { name: "campaign_name", required: true, maxlength: 200 })),
      ui.field(t("marketing.campaign.kind"), kind)), when,
      ui.field(t("marketing.rules.control"), h("input", { name: "control_share", type: "number", min: 0, max: 50, step: 1,
        value: "10", required: true }), t("marketing.rules.control_hint"))],
    onsubmit: async (data) => {
      outcome.replaceChildren();
      if (!state.template || (!state.audience && kind.value !== "triggered")) {
        outcome.append(h("p", { class: "problem", role: "alert" }, t("marketing.campaign.need")));
        return;
      }
      // Created once per builder: a second press (after an activation refused, say) activates the same draft.
      if (!state.campaign) {
        state.campaign = await api.post("/v1/campaigns", {
          name: data.get("campaign_name"), kind: kind.value, audience_id: state.audience?.audience_id ?? null,
          template_id: state.template.template_id, schedule: schedule(kind.value, data), actions: [{ kind: "message" }],
          rules: { control_share: Number(data.get("control_share")) / 100 } });
      }
      const campaign = await api.post(`/v1/campaigns/${encodeURIComponent(state.campaign.campaign_id)}/activate`, {});
      state.campaign = campaign;
      const waiting = campaign.status === "awaiting_approval";
      outcome.append(h("div", { class: waiting ? "notice" : "card", role: "status", "data-status": campaign.status },
        h("strong", {}, t("marketing.campaign.created", { id: campaign.campaign_id, status: t(`marketing.status.${campaign.status}`) })),
        h("p", {}, t(waiting ? "marketing.campaign.awaiting" : "marketing.campaign.active",
                     { size: formatNumber(campaign.estimated_size) })),
        h("a", { href: `#/campaigns/${encodeURIComponent(campaign.campaign_id)}` }, t("marketing.campaign.results"))));
    },
  });
  return h("section", { class: "card", "aria-labelledby": "step-schedule" },
    h("h2", { id: "step-schedule" }, t("marketing.step.schedule")), form);
}

async function builder(main) {
  const state = { audience: null, template: null, campaign: null, channel: () => "email", reestimate: () => null };
  const outcome = h("div", { "aria-live": "polite" });
  const audience = audienceStep(state);
  const template = templateStep(state);
  main.append(h("h1", {}, t("marketing.builder")), h("p", { class: "muted" }, t("marketing.builder.intro")),
              audience, template, campaignStep(state, outcome), outcome);
}

export const routes = [
  { path: "/campaigns/new", nav: "marketing.builder", group: "marketing", roles: ["marketer", "supervisor"],
    render: (main) => builder(main) },
];
