"""Message templates: what each channel needs, validation when a marketer saves one, rendering at send time.

Templates are Jinja2, run in ``ImmutableSandboxedEnvironment`` hardened by sandbox.py (no globals but a
capped ``range``, unsafe attributes fail, size-multiplying operations are checked before they run): a
template can read the variables it is given and call safe methods on them, nothing else. Validation
adds what bounds a render's work:

- only the names in ``VARIABLES``; at render an absent variable renders as an empty string, so a
  template never fails for want of an optional value;
- no ``include``/``extends``/``import`` (there is no loader), no macros, call blocks or blocks (they
  allow recursion), at most ``MAX_ASSIGNMENTS`` ``set`` statements;
- loops only over ``range(…)``, not recursive, nested at most ``MAX_LOOP_NESTING`` deep;
- output is streamed and cut at ``MAX_OUTPUT_BYTES`` per part.

Escaping follows the output: HTML is autoescaped; subject, plain text and SMS are not (they are not
HTML), and the subject is folded to one line (CR/LF in a header would let a value inject headers).
A JSON body (webhook, notification) is rendered with every ``{{ … }}`` escaped *for the inside of a
JSON string*: write ``{"name": "{{ name }}", "points": {{ points_balance }}}``; the result must parse
to a JSON object.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal

from jinja2 import StrictUndefined, Template, TemplateError, Undefined, meta, nodes
from jinja2.sandbox import SecurityError

from crm_campaigns.domain.sandbox import HardenedEnvironment, printable

Channel = Literal["email", "sms", "webhook", "notification"]
CHANNELS: tuple[Channel, ...] = ("email", "sms", "webhook", "notification")

VARIABLES = frozenset({
    "name", "tier", "points_balance", "points_expiring", "points_expiring_on", "coupon_code",
    "unsubscribe_url", "campaign_name", "shop_name",
})

MAX_SOURCE_CHARS = 100_000      # per part, as stored
MAX_OUTPUT_BYTES = 256 * 1024   # per rendered part, UTF-8
MAX_SMS_CHARS = 1_000           # about six concatenated segments; longer is a mistake, not a message
MAX_SUBJECT_CHARS = 500
MAX_LOOP_NESTING = 2            # loops go over range() only: at most MAX_RANGE² iterations
MAX_ASSIGNMENTS = 5             # ``set`` statements; each may at most double a value's size

# The parts each channel requires (at least one of each tuple) and allows.
_REQUIRED: dict[str, tuple[tuple[str, ...], ...]] = {
    "email": (("subject",), ("html", "text")),
    "sms": (("text",),),
    "webhook": (("body",),),
    "notification": (("body",),),
}
_ALLOWED: dict[str, frozenset[str]] = {
    "email": frozenset({"subject", "html", "text"}),
    "sms": frozenset({"text"}),
    "webhook": frozenset({"body"}),
    "notification": frozenset({"body"}),
}
_PARTS = ("subject", "html", "text", "body")

SAMPLE_VARIABLES: dict[str, dict[str, object]] = {
    "en": {
        "name": "Alex Sample", "tier": "gold", "points_balance": 1280, "points_expiring": 200,
        "points_expiring_on": "2026-12-31", "coupon_code": "SAMPLE-CODE",
        "unsubscribe_url": "https://example.invalid/unsubscribe", "campaign_name": "Sample campaign",
        "shop_name": "Sample Shop",
    },
    "zh-CN": {
        "name": "示例顾客", "tier": "gold", "points_balance": 1280, "points_expiring": 200,
        "points_expiring_on": "2026-12-31", "coupon_code": "SAMPLE-CODE",
        "unsubscribe_url": "https://example.invalid/unsubscribe", "campaign_name": "示例活动",
        "shop_name": "示例商店",
    },
}


class TemplateInvalid(ValueError):
    """The template cannot be saved: the message says why (safe to show to its author)."""


class RenderFailed(ValueError):
    """A valid template failed to render with these values (sandbox violation, output too long, bad JSON)."""


@dataclass(frozen=True)
class TemplateContent:
    subject: str | None = None
    html: str | None = None
    text: str | None = None
    body: str | None = None


@dataclass(frozen=True)
class Rendered:
    subject: str | None = None
    html: str | None = None
    text: str | None = None
    body: dict[str, Any] | None = None


def _json_string_inner(value: object) -> object:
    """``finalize`` of JSON bodies: a value printed by ``{{ }}`` is safe inside a JSON string literal."""
    printable(value)
    if isinstance(value, Undefined) or value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float | Decimal):
        return str(value)
    return json.dumps(str(value), ensure_ascii=False)[1:-1]


_HTML = HardenedEnvironment(autoescape=True, undefined=Undefined, finalize=printable)
_PLAIN = HardenedEnvironment(autoescape=False, undefined=Undefined, finalize=printable)
_JSON = HardenedEnvironment(autoescape=False, undefined=Undefined, finalize=_json_string_inner)
_ANALYSIS = HardenedEnvironment(autoescape=False, undefined=StrictUndefined)  # parses only; never renders


def _environment(part: str) -> HardenedEnvironment:
    return {"html": _HTML, "body": _JSON}.get(part, _PLAIN)


def validate(channel: str, content: TemplateContent) -> None:
    """Raises ``TemplateInvalid`` unless ``content`` is a complete, safe template for ``channel``.

    Checks: the channel is known; the parts it requires are present and no other part is; each part is
    at most ``MAX_SOURCE_CHARS``, parses, uses only ``VARIABLES``, no include/extends/import and no loops
    nested deeper than ``MAX_LOOP_NESTING``; and a trial render with the sample values succeeds (which
    catches e.g. a JSON body that is not an object, or an SMS longer than ``MAX_SMS_CHARS``).
    """
    if channel not in _REQUIRED:
        raise TemplateInvalid(f"unknown channel {channel!r}; expected one of {', '.join(CHANNELS)}")
    present = {part for part in _PARTS if (getattr(content, part) or "").strip()}
    for alternatives in _REQUIRED[channel]:
        if not present & set(alternatives):
            raise TemplateInvalid(f"{channel} template needs {' or '.join(alternatives)}")
    extra = present - _ALLOWED[channel]
    if extra:
        raise TemplateInvalid(f"{channel} template has no {', '.join(sorted(extra))}")
    for part in sorted(present):
        _check_source(part, getattr(content, part))
    for locale in SAMPLE_VARIABLES:
        try:
            render(channel, content, SAMPLE_VARIABLES[locale])
        except RenderFailed as error:
            raise TemplateInvalid(f"sample render failed: {error}") from error


def _check_source(part: str, source: str) -> None:
    if len(source) > MAX_SOURCE_CHARS:
        raise TemplateInvalid(f"{part} is longer than {MAX_SOURCE_CHARS} characters")
    try:
        tree = _ANALYSIS.parse(source)
    except TemplateError as error:
        line = getattr(error, "lineno", None)
        raise TemplateInvalid(f"{part}: syntax error{f' on line {line}' if line else ''}: {error}") from error
    unknown = meta.find_undeclared_variables(tree) - VARIABLES
    if unknown:
        raise TemplateInvalid(f"{part} uses unknown variables: {', '.join(sorted(unknown))}")
    if any(True for _ in tree.find_all((nodes.Include, nodes.Extends, nodes.Import, nodes.FromImport))):
        raise TemplateInvalid(f"{part}: include, extends and import are not available")
    if any(True for _ in tree.find_all((nodes.Macro, nodes.CallBlock, nodes.Block))):
        raise TemplateInvalid(f"{part}: macro, call and block are not available")
    if sum(1 for _ in tree.find_all((nodes.Assign, nodes.AssignBlock))) > MAX_ASSIGNMENTS:
        raise TemplateInvalid(f"{part}: at most {MAX_ASSIGNMENTS} set statements")
    for loop in tree.find_all(nodes.For):
        if loop.recursive or not _is_range_call(loop.iter):
            raise TemplateInvalid(f"{part}: loops go over range(...) only, and are not recursive")
    if _loop_depth(tree) > MAX_LOOP_NESTING:
        raise TemplateInvalid(f"{part}: loops nest at most {MAX_LOOP_NESTING} deep")


def _is_range_call(node: nodes.Node) -> bool:
    return isinstance(node, nodes.Call) and isinstance(node.node, nodes.Name) and node.node.name == "range"


def _loop_depth(node: nodes.Node) -> int:
    deepest = max((_loop_depth(child) for child in node.iter_child_nodes()), default=0)
    return deepest + 1 if isinstance(node, nodes.For) else deepest


def render(channel: str, content: TemplateContent, variables: Mapping[str, object]) -> Rendered:
    """Renders each present part of ``content`` with ``variables`` (only names in ``VARIABLES`` are passed).

    Guarantees: HTML values are escaped; the subject is one line; each part is at most
    ``MAX_OUTPUT_BYTES`` (SMS ``MAX_SMS_CHARS``); ``body`` is a JSON object. Any failure, including a
    sandbox violation, raises ``RenderFailed``. Render only what ``validate`` accepted: the work bound
    (loops over ``range`` only, no macros) is checked there, not here.
    """
    context = {name: value for name, value in variables.items() if name in VARIABLES}
    out: dict[str, Any] = {}
    for part in _PARTS:
        source = getattr(content, part)
        if source is None or not source.strip():
            continue
        out[part] = _render_part(part, source, context)
    if out.get("subject") is not None:
        out["subject"] = single_line(out["subject"])[:MAX_SUBJECT_CHARS]
    if channel == "sms" and out.get("text") is not None and len(out["text"]) > MAX_SMS_CHARS:
        raise RenderFailed(f"SMS text is longer than {MAX_SMS_CHARS} characters")
    if out.get("body") is not None:
        out["body"] = _json_object(out["body"])
    return Rendered(**out)


@functools.lru_cache(maxsize=256)
def _compiled(part: str, source: str) -> Template:
    # Compiling is most of a render's cost and a campaign renders the same source for every
    # contact (bench/campaigns.py: ~9% of the worker's CPU at 100,000 messages before this cache).
    # A compiled template holds no render state, so one serves every render; a failed compile is
    # not cached and fails again the same way.
    return _environment(part).from_string(source)


def _render_part(part: str, source: str, context: Mapping[str, object]) -> str:
    try:
        template = _compiled(part, source)
        chunks: list[str] = []
        size = 0
        for chunk in template.generate(context):
            size += len(chunk.encode("utf-8"))
            if size > MAX_OUTPUT_BYTES:
                raise RenderFailed(f"{part} renders longer than {MAX_OUTPUT_BYTES} bytes")
            chunks.append(chunk)
    except RenderFailed:
        raise
    except SecurityError as error:
        raise RenderFailed(f"{part}: not allowed in a template: {error}") from error
    except (TemplateError, ArithmeticError, TypeError, ValueError, AttributeError, LookupError,
            RecursionError, MemoryError) as error:
        raise RenderFailed(f"{part}: {type(error).__name__}: {error}") from error
    return "".join(chunks)


def _json_object(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except ValueError as error:
        raise RenderFailed(f"body is not valid JSON: {error}") from error
    if not isinstance(value, dict):
        raise RenderFailed("body must be a JSON object")
    return value


_LINE_BREAKS = re.compile(r"[\x00-\x1f\x7f\u2028\u2029\u0085]+")


def single_line(value: str) -> str:
    """``value`` with control characters (CR, LF, tabs, NUL…) folded to single spaces, trimmed."""
    return " ".join(_LINE_BREAKS.sub(" ", value).split())


def choose_locale(available: Iterable[str], customer_locale: str | None, default: str = "en") -> str:
    """The template locale to use for a customer: an exact match (case and ``_``/``-`` ignored), else the
    same language and region (``zh-Hans-CN`` → ``zh-CN``), else the same language (``en-GB`` → ``en``,
    ``zh`` → ``zh-CN``; a bare language is preferred), else ``default`` if available, else the first
    available in sorted order. Raises ``ValueError`` when nothing is available.
    """
    choices = sorted(set(available))
    if not choices:
        raise ValueError("no locale available")
    if customer_locale:
        wanted = _subtags(customer_locale)
        parsed = [(choice, _subtags(choice)) for choice in choices]
        for matches in (
            lambda tags: tags == wanted,
            lambda tags: tags[0] == wanted[0] and tags[2] == wanted[2] and wanted[2] is not None,
            lambda tags: tags[0] == wanted[0] and tags[2] is None,
            lambda tags: tags[0] == wanted[0],
        ):
            found = [choice for choice, tags in parsed if matches(tags)]
            if found:
                return found[0]
    return default if default in choices else choices[0]


def _subtags(locale: str) -> tuple[str, str | None, str | None]:
    """(language, script, region) of a BCP 47-ish tag, lower-cased: ``zh_Hans_CN`` → (zh, hans, cn)."""
    parts = [part for part in re.split(r"[-_.@]", locale.strip().lower()) if part]
    language = parts[0] if parts else ""
    script = next((part for part in parts[1:] if len(part) == 4 and part.isalpha()), None)
    region = next((part for part in parts[1:] if len(part) == 2 or (len(part) == 3 and part.isdigit())), None)
    return language, script, region
