// The shell's own texts; each view module brings its own.
export const messages = {
  en: {
    "app.title": "CRM console", "app.skip": "Skip to content", "app.sign_out": "Sign out", "app.language": "Language",
    "app.menu": "Menu", "app.not_found": "There is no such page.", "app.forbidden": "Your role cannot open this page.",
    "app.signed_in_as": "{subject} · {role}",
    "nav.agent": "Call centre", "nav.marketing": "Marketing", "nav.supervision": "Supervision",
    "role.agent": "Agent", "role.marketer": "Marketer", "role.supervisor": "Supervisor",
    "signin.title": "Sign in", "signin.role": "Role", "signin.name": "Your name (user id)",
    "signin.submit": "Sign in", "signin.pii": "May reveal personal data (pii:read)", "signin.dev_note": "Development sign-in: the gateway issues a token for the role you pick.",
    "signin.oidc": "Sign in with your company account", "signin.expired": "Your session has ended. Please sign in again.",
    "common.loading": "Loading…", "common.more": "More", "common.empty": "Nothing here yet.", "common.error": "Something went wrong",
    "common.network_error": "The server cannot be reached", "common.save": "Save", "common.ok": "OK", "common.cancel": "Cancel",
    "common.chart_data": "The numbers", "common.search": "Search", "common.reason": "Reason", "common.none": "—",
  },
  "zh-CN": {
    "app.title": "CRM 控制台", "app.skip": "跳到内容", "app.sign_out": "退出登录", "app.language": "语言",
    "app.menu": "菜单", "app.not_found": "没有这个页面。", "app.forbidden": "您的角色不能打开此页面。",
    "app.signed_in_as": "{subject} · {role}",
    "nav.agent": "呼叫中心", "nav.marketing": "营销", "nav.supervision": "主管",
    "role.agent": "客服", "role.marketer": "营销人员", "role.supervisor": "主管",
    "signin.title": "登录", "signin.role": "角色", "signin.name": "您的名字（用户 ID）",
    "signin.submit": "登录", "signin.pii": "可查看个人信息明文（pii:read）", "signin.dev_note": "开发环境登录：网关为所选角色签发令牌。",
    "signin.oidc": "使用公司账号登录", "signin.expired": "会话已结束，请重新登录。",
    "common.loading": "加载中…", "common.more": "更多", "common.empty": "暂无内容。", "common.error": "出错了",
    "common.network_error": "无法连接服务器", "common.save": "保存", "common.ok": "确定", "common.cancel": "取消",
    "common.chart_data": "数据", "common.search": "搜索", "common.reason": "原因", "common.none": "—",
  },
};
