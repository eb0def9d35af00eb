"""Message templates: per-channel validation, escaping, the sandbox's refusals, size caps and locales."""

from __future__ import annotations

import pytest
from crm_campaigns.domain.templates import (
    MAX_OUTPUT_BYTES,
    MAX_SMS_CHARS,
    MAX_SOURCE_CHARS,
    SAMPLE_VARIABLES,
    VARIABLES,
    RenderFailed,
    TemplateContent,
    TemplateInvalid,
    choose_locale,
    render,
    validate,
)

EMAIL = TemplateContent(
    subject="{{ shop_name }}: {{ points_expiring }} points expire",
    html="<p>Hello {{ name }}, use {{ coupon_code }}</p><a href=\"{{ unsubscribe_url }}\">unsubscribe</a>",
    text="Hello {{ name }}, use {{ coupon_code }}. Unsubscribe: {{ unsubscribe_url }}",
)


# --- validation ---------------------------------------------------------------------------------

@pytest.mark.parametrize(("channel", "content"), [
    ("email", EMAIL),
    ("email", TemplateContent(subject="Hi", text="only text")),
    ("email", TemplateContent(subject="Hi", html="<b>only html</b>")),
    ("sms", TemplateContent(text="{{ name }}, {{ points_balance }} points. {% if tier == 'gold' %}Gold!{% endif %}")),
    ("webhook", TemplateContent(body='{"customer": "{{ name }}", "points": {{ points_balance }}}')),
    ("notification", TemplateContent(body='{"title": "{{ campaign_name }}", "tier": "{{ tier|upper }}"}')),
    ("sms", TemplateContent(text="{% for i in range(3) %}{{ loop.index }}{% endfor %}")),
])
def test_valid_templates_pass(channel, content):
    validate(channel, content)


@pytest.mark.parametrize(("channel", "content", "says"), [
    ("fax", TemplateContent(text="x"), "unknown channel"),
    ("email", TemplateContent(html="<p>x</p>"), "subject"),
    ("email", TemplateContent(subject="Hi"), "html or text"),
    ("email", TemplateContent(subject="Hi", text="x", body="{}"), "no body"),
    ("sms", TemplateContent(text="  "), "text"),
    ("sms", TemplateContent(text="x", html="<p>x</p>"), "no html"),
    ("webhook", TemplateContent(text="x"), "body"),
    ("sms", TemplateContent(text="{{ name"), "syntax error"),
    ("sms", TemplateContent(text="{% if %}"), "syntax error"),
    ("sms", TemplateContent(text="{{ email }} {{ phone }}"), "unknown variables: email, phone"),
    ("sms", TemplateContent(text="{{ config }}"), "unknown variables: config"),
    ("sms", TemplateContent(text="{{ lipsum() }}"), "unknown variables: lipsum"),
    ("sms", TemplateContent(text="{% include 'x' %}"), "include"),
    ("sms", TemplateContent(text="{% extends 'x' %}"), "include"),
    ("sms", TemplateContent(text="{% import 'x' as y %}"), "include"),
    ("sms", TemplateContent(text="x" * (MAX_SOURCE_CHARS + 1)), "longer than"),
    ("sms", TemplateContent(text="x" * (MAX_SMS_CHARS + 1)), "SMS text is longer"),
    ("sms", TemplateContent(text="{% for a in range(2) %}{% for b in range(2) %}{% for c in range(2) %}"
                                 "{% endfor %}{% endfor %}{% endfor %}"), "nest"),
    ("webhook", TemplateContent(body='{"a": {{ name }}}'), "not valid JSON"),
    ("webhook", TemplateContent(body="[1, 2]"), "JSON object"),
    ("sms", TemplateContent(text="{{ ''.__class__ }}"), "not allowed"),
])
def test_invalid_templates_are_refused_with_a_reason(channel, content, says):
    with pytest.raises(TemplateInvalid, match=says):
        validate(channel, content)


def test_template_invalid_is_a_value_error():
    assert issubclass(TemplateInvalid, ValueError)
    assert issubclass(RenderFailed, ValueError)


# --- rendering ----------------------------------------------------------------------------------

def test_email_html_is_escaped_and_text_and_subject_are_not():
    values = {**SAMPLE_VARIABLES["en"], "name": "<b>Tom & Jerry</b>", "shop_name": "A&B"}
    rendered = render("email", EMAIL, values)
    assert "Hello &lt;b&gt;Tom &amp; Jerry&lt;/b&gt;" in rendered.html
    assert rendered.text.startswith("Hello <b>Tom & Jerry</b>, use SAMPLE-CODE")
    assert rendered.subject == "A&B: 200 points expire"
    assert rendered.body is None


def test_subject_is_folded_to_one_line_against_header_injection():
    content = TemplateContent(subject="Hi {{ name }}\nfooter", text="x")
    rendered = render("email", content, {"name": "Alex\r\nBcc: victim@example.invalid\x00"})
    assert "\r" not in rendered.subject and "\n" not in rendered.subject and "\x00" not in rendered.subject
    assert rendered.subject == "Hi Alex Bcc: victim@example.invalid footer"


def test_absent_variables_render_empty_and_unknown_ones_are_not_passed():
    rendered = render("sms", TemplateContent(text="[{{ coupon_code }}][{{ name }}]"), {"name": "A", "secret": "s"})
    assert rendered.text == "[][A]"
    assert render("sms", TemplateContent(text="[{{ secret }}]"), {"secret": "s"}).text == "[]"


def test_webhook_body_escapes_values_for_json_strings():
    content = TemplateContent(body='{"name": "{{ name }}", "points": {{ points_balance }}, '
                                   '"code": "{{ coupon_code }}"}')
    rendered = render("webhook", content, {"name": 'quote " backslash \\ newline \n </script>', "points_balance": 5})
    assert rendered.body == {"name": 'quote " backslash \\ newline \n </script>', "points": 5, "code": ""}


def test_json_injection_through_a_value_cannot_add_keys():
    content = TemplateContent(body='{"name": "{{ name }}"}')
    rendered = render("notification", content, {"name": 'x", "admin": true, "y": "'})
    assert rendered.body == {"name": 'x", "admin": true, "y": "'}


def test_sms_over_the_cap_fails_at_render():
    content = TemplateContent(text="{{ name }}")
    with pytest.raises(RenderFailed, match="SMS"):
        render("sms", content, {"name": "x" * (MAX_SMS_CHARS + 1)})
    assert render("sms", content, {"name": "x" * MAX_SMS_CHARS}).text == "x" * MAX_SMS_CHARS


def test_output_is_capped():
    content = TemplateContent(subject="s", text="{% for i in range(100) %}{{ name }}{% endfor %}")
    with pytest.raises(RenderFailed, match="longer than"):
        render("email", content, {"name": "x" * (MAX_OUTPUT_BYTES // 100 + 1)})


def test_unicode_renders():
    rendered = render("sms", TemplateContent(text="{{ name }}，您好"), SAMPLE_VARIABLES["zh-CN"])
    assert rendered.text == "示例顾客，您好"


def test_sample_variables_cover_every_variable_in_each_locale():
    for values in SAMPLE_VARIABLES.values():
        assert set(values) == VARIABLES
    assert SAMPLE_VARIABLES["en"]["name"] == "Alex Sample"
    assert SAMPLE_VARIABLES["zh-CN"]["unsubscribe_url"] == "https://example.invalid/unsubscribe"


# --- the sandbox --------------------------------------------------------------------------------

ESCAPES = [
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ ''.__class__ }}",
    "{{ name.__class__.__base__.__subclasses__() }}",
    "{{ cycler.__init__.__globals__ }}",
    "{{ joiner.__init__.__globals__.os }}",
    "{{ namespace.__init__.__globals__ }}",
    "{{ lipsum.__globals__ }}",
    "{{ lipsum.__globals__['os'].popen('id').read() }}",
    "{{ self._TemplateReference__context }}",
    "{{ self._TemplateReference__context.cycler.__init__.__globals__.os }}",
    "{{ self.__init__.__globals__ }}",
    "{{ config }}",
    "{{ config.items() }}",
    "{{ request.application.__globals__ }}",
    "{{ range.__globals__ }}",
    "{{ name|attr('__class__') }}",
    "{{ name|attr('__class__')|attr('__mro__') }}",
    "{{ '{0.__class__.__mro__}'.format(name) }}",
    "{{ name.format_map }}",
    "{{ (name|map(attribute='__class__')|list) }}",
    "{{ ''.__class__.__mro__[1].__subclasses__()[0].__init__.__globals__ }}",
    "{% set x = name.__class__ %}{{ x.__subclasses__() }}",
    "{{ 'x' * 1000000000 }}",
    "{{ 10 ** 100000000 }}",
    "{{ range(100000000)|list }}",
    "{{ dict(a=1) }}",
    "{{ self }}",
    "{{ range }}",
    "{{ name.upper }}",
]
LEAKS = ("subclasses", "<class", "__globals__", "__builtins__", "popen", "os.", "<module", "function",
         "uid=", "TemplateReference")


@pytest.mark.parametrize("source", ESCAPES)
def test_sandbox_escapes_fail_or_render_nothing_harmful(source):
    # Rendered directly (validation would already refuse most for their unknown variables).
    try:
        rendered = render("sms", TemplateContent(text=source), {"name": "Alex"})
    except RenderFailed:
        return
    text = rendered.text or ""
    assert len(text) < 100
    for leak in LEAKS:
        assert leak not in text, (source, text)


@pytest.mark.parametrize("source", ESCAPES)
def test_sandbox_escapes_are_refused_at_validation(source):
    with pytest.raises(TemplateInvalid):
        validate("sms", TemplateContent(text=source))


def test_sandbox_escapes_in_html_and_json_parts_fail_too():
    with pytest.raises(RenderFailed):
        render("email", TemplateContent(subject="s", html="{{ ''.__class__.__mro__ }}"), {})
    with pytest.raises(RenderFailed):
        render("webhook", TemplateContent(body='{"a": "{{ \'\'.__class__.__mro__ }}"}'), {})


def test_range_is_kept_but_capped():
    assert render("sms", TemplateContent(text="{{ range(3)|list }}"), {}).text == "[0, 1, 2]"
    with pytest.raises(RenderFailed, match="range"):
        render("sms", TemplateContent(text="{{ range(101)|list }}"), {})


def test_templates_cannot_mutate_values():
    values = {"name": "A"}
    with pytest.raises(RenderFailed):
        render("sms", TemplateContent(text="{{ tier.append(1) }}"), {"tier": []})
    render("sms", TemplateContent(text="{{ name }}"), values)
    assert values == {"name": "A"}


# --- locales ------------------------------------------------------------------------------------

@pytest.mark.parametrize(("customer", "chosen"), [
    ("zh", "zh-CN"), ("zh_CN", "zh-CN"), ("zh-Hans-CN", "zh-CN"), ("ZH-cn", "zh-CN"), ("zh-CN", "zh-CN"),
    ("en", "en"), ("en-GB", "en"), ("en_US.UTF-8", "en"), ("EN", "en"),
    ("fr-FR", "en"), (None, "en"), ("", "en"),
])
def test_choose_locale(customer, chosen):
    assert choose_locale(["zh-CN", "en"], customer) == chosen


def test_choose_locale_prefers_region_then_bare_language():
    assert choose_locale(["en", "en-US", "en-GB"], "en-GB") == "en-GB"
    assert choose_locale(["en", "en-US"], "en-AU") == "en"
    assert choose_locale(["en-US", "zh-CN"], "en-AU") == "en-US"
    assert choose_locale(["zh-TW", "zh-CN"], "zh-Hant-TW") == "zh-TW"


def test_choose_locale_falls_back_to_default_then_first_sorted():
    assert choose_locale(["zh-CN", "en"], "de", default="zh-CN") == "zh-CN"
    assert choose_locale(["zh-CN", "ja"], "de") == "ja"
    assert choose_locale(["zh-CN"], "de") == "zh-CN"
    with pytest.raises(ValueError):
        choose_locale([], "en")


# --- resource limits ----------------------------------------------------------------------------

# One expression each that would allocate hundreds of megabytes (or spin) without the hardened sandbox.
BOMBS = [
    "{{ '%999999999s'|format('') }}", "{{ '%*s'|format(999999999, '') }}", "{{ '%.999999999f'|format(1.0) }}",
    "{{ '%999999999s' % '' }}", "{{ '{:>999999999}'.format('') }}", "{{ '{:>{w}}'.format('', w=999999999) }}",
    "{{ '{0:{1}}'.format('', 999999999) }}", "{{ name.center(999999999) }}", "{{ name.ljust(999999999) }}",
    "{{ name.zfill(999999999) }}", "{{ name|center(999999999) }}", "{{ name|indent(999999999) }}",
    "{{ ('x'*9999)|replace('x', 'y'*9999) }}", "{{ ('x'*9999).replace('x', 'y'*9999) }}",
    "{{ ('y'*9999).join('x'*9999) }}", "{{ ('x'*9999)|join('y'*9999) }}", "{{ ('\t'*9999).expandtabs(9999) }}",
    "{{ ('x'*999)|map('upper')|join('y'*9999) }}", "{{ ('x'*9999)|wordwrap(1, wrapstring='y'*9999) }}",
    "{{ [1]|batch(999999999, 0)|list }}", "{{ [1]|slice(999999999)|list }}", "{{ 2**64**64 }}",
    "{{ (2**4000)*(2**4000) }}", "{{ name|map('center', 999999999)|list }}", "{{ ('\n'*9999)|indent('y'*999) }}",
]


@pytest.mark.parametrize("source", BOMBS)
def test_size_multiplying_operations_are_refused_before_they_run(source):
    with pytest.raises(RenderFailed, match="not allowed"):
        render("sms", TemplateContent(text=source), {"name": "Alex"})
    with pytest.raises(TemplateInvalid):
        validate("sms", TemplateContent(text=source))


@pytest.mark.parametrize(("source", "says"), [
    ("{% macro f(n) %}{{ f(n) }}{% endmacro %}{{ f(1) }}", "macro"),
    ("{% block a %}{{ self.a() }}{% endblock %}", "block"),
    ("{% for x in range(3) recursive %}{{ loop(range(3)) }}{% endfor %}", "not recursive"),
    ("{% for c in 'x' * 9999 %}{% for d in 'x' * 9999 %}{% endfor %}{% endfor %}", "range"),
    ("{% for c in name %}{% endfor %}", "range"),
    ("{% set a = 'x' * 9999 %}" + "{% set a = a ~ a %}" * 5 + "{{ a }}", "set statements"),
])
def test_constructs_without_a_bound_are_refused(source, says):
    with pytest.raises(TemplateInvalid, match=says):
        validate("sms", TemplateContent(text=source))


def test_recursion_that_slips_past_validation_fails_cleanly_at_render():
    with pytest.raises(RenderFailed, match="Recursion"):
        render("sms", TemplateContent(text="{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}"), {})


@pytest.mark.parametrize(("source", "expected"), [
    ("{{ '%05.1f'|format(points_balance) }}", "1280.0"),
    ("{{ '%s has %d points' % (name, points_balance) }}", "Alex Sample has 1280 points"),
    ("{{ '{} / {:>6}'.format(tier, points_balance) }}", "gold /   1280"),
    ("{{ name|center(15) }}", "  Alex Sample  "),
    ("{{ name|replace('Sample', 'S.') }}", "Alex S."),
    ("{{ [tier, shop_name]|join(', ') }}", "gold, Sample Shop"),
    ("{% set greeting = 'Dear ' ~ name %}{{ greeting }}", "Dear Alex Sample"),
    ("{% for i in range(2) %}{% for j in range(2) %}{{ i }}{{ j }} {% endfor %}{% endfor %}", "00 01 10 11 "),
    ("{{ tier|upper }} {{ name|length }} {{ points_balance * 2 }}", "GOLD 11 2560"),
])
def test_ordinary_formatting_still_works(source, expected):
    validate("sms", TemplateContent(text=source))
    assert render("sms", TemplateContent(text=source), SAMPLE_VARIABLES["en"]).text == expected
