"""The Jinja2 environment message templates run in: ``ImmutableSandboxedEnvironment``, hardened further.

The stock sandbox stops templates from reaching Python internals (``__class__``, ``__globals__``…) and,
being immutable, from changing the values they are given. It does not bound resources: one
expression such as ``{{ '%999999999s'|format('') }}`` would allocate a gigabyte before any output
cap could look at it. Here:

- an unsafe attribute fails at once (the stock sandbox returns an Undefined that prints as "",
  so a template author would not learn that the template is refused);
- the globals are only a ``range`` capped at ``MAX_RANGE`` items (no ``lipsum``, ``cycler``,
  ``joiner``, ``namespace``, ``dict``); the ``random`` filter is gone (previews must be repeatable);
- every operation that can multiply a size is checked *before* it runs: ``*`` and ``**``, ``%`` and
  ``str.format`` field widths, the width/separator/replacement arguments of ``center``, ``ljust``,
  ``rjust``, ``zfill``, ``expandtabs``, ``replace``, ``join`` (methods and filters), ``indent``,
  ``wordwrap``, ``batch`` and ``slice``; any string a call returns is at most ``MAX_RESULT_CHARS``;
- ``{{ … }}`` prints only data (str, numbers, dates, lists, dicts), never a function or an internal
  object such as ``self``.

Loops, ``set`` and macros are limited where templates are validated (templates.py): with those
limits, the work and memory of one render are bounded by the source size and these caps.
"""

from __future__ import annotations

import functools
import inspect
import re
import string
from collections.abc import Callable
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from jinja2 import Undefined
from jinja2.sandbox import ImmutableSandboxedEnvironment, SecurityError

MAX_RANGE = 100               # a message never needs to count further
MAX_SEQUENCE = 10_000         # longest string or list ``*`` may build; most batches/slices
MAX_WIDTH = 1_000             # widest field a format, ``center``… may pad to
MAX_RESULT_CHARS = 256 * 1024
MAX_INTEGER_BITS = 4_096      # integer results of ``*``/``**``; marketing copy needs no bigger number
MAX_EXPONENT = 64

_PRINTABLE = (str, int, float, Decimal, date, datetime, list, tuple, dict, Undefined, type(None))
_PERCENT_SPEC = re.compile(r"%[-#0 +]*(\*|\d+)?(?:\.(\*|\d+))?")


def refuse(reason: str) -> None:
    raise SecurityError(reason)


def capped_range(*args: int) -> range:
    numbers = range(*args)
    if len(numbers) > MAX_RANGE:
        refuse(f"range is limited to {MAX_RANGE} items")
    return numbers


def printable(value: object) -> object:
    """``finalize`` of text and HTML: lets data through, refuses anything else."""
    if not isinstance(value, _PRINTABLE):
        refuse(f"cannot print a {type(value).__name__}")
    return value


def _limit(estimate: int) -> None:
    if estimate > MAX_RESULT_CHARS:
        refuse("result too long")


def _check_percent_format(fmt: object) -> None:
    for match in _PERCENT_SPEC.finditer(str(fmt)):
        for number in match.groups():
            if number == "*" or (number and int(number) > MAX_WIDTH):
                refuse("format field too wide")


def _check_brace_format(fmt: str) -> None:
    for _, _, spec, _ in string.Formatter().parse(fmt):
        if spec and ("{" in spec or any(int(n) > MAX_WIDTH for n in re.findall(r"\d+", spec))):
            refuse("format field too wide")


def _int(value: object) -> int:
    return value if isinstance(value, int) else 0


def _sized(value: object) -> object:
    """``value`` as something with a length (a generator becomes a list, at most ``MAX_SEQUENCE`` items)."""
    if hasattr(value, "__len__"):
        return value
    items = []
    for item in value:  # type: ignore[attr-defined]
        items.append(item)
        if len(items) > MAX_SEQUENCE:
            refuse("sequence too long")
    return items


# Pre-check of a str method call; returns the arguments to call it with (a generator becomes a list).
def _check_str_call(text: str, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, ...]:
    if name in {"center", "ljust", "rjust", "zfill"}:
        if _int(args[0] if args else kwargs.get("width")) > MAX_WIDTH:
            refuse("field too wide")
    elif name == "expandtabs":
        _limit(len(text) + text.count("\t") * _int(args[0] if args else kwargs.get("tabsize", 8)))
    elif name == "replace" and len(args) >= 2:
        _limit(len(text) + (len(text) + 1) * len(str(args[1])))
    elif name == "join" and args:
        args = (_sized(args[0]), *args[1:])
        _limit(len(text) * len(args[0]))  # type: ignore[arg-type]
    return args


# Pre-checks of filters, on their bound arguments (may replace an argument).
def _center(a: dict[str, Any]) -> None:
    if _int(a.get("width", 80)) > MAX_WIDTH:
        refuse("field too wide")


def _indent(a: dict[str, Any]) -> None:
    width = a.get("width", 4)
    per_line = width if isinstance(width, int) else len(str(width))
    if per_line > MAX_WIDTH:
        refuse("indent too wide")
    _limit(len(str(a["s"])) + (str(a["s"]).count("\n") + 1) * per_line)


def _replace(a: dict[str, Any]) -> None:
    _limit(len(str(a["s"])) + (len(str(a["s"])) + 1) * len(str(a["new"])))


def _join(a: dict[str, Any]) -> None:
    a["value"] = _sized(a["value"])
    _limit(len(str(a.get("d", ""))) * len(a["value"]))


def _wordwrap(a: dict[str, Any]) -> None:
    if a.get("wrapstring"):
        _limit(len(str(a["s"])) * (1 + len(str(a["wrapstring"]))))


def _batch(a: dict[str, Any]) -> None:
    if _int(a.get("linecount")) > MAX_SEQUENCE:
        refuse("batch too large")


def _slice(a: dict[str, Any]) -> None:
    if _int(a.get("slices")) > MAX_SEQUENCE:
        refuse("too many slices")


def _format(a: dict[str, Any]) -> None:
    _check_percent_format(a["value"])


_FILTER_CHECKS: dict[str, Callable[[dict[str, Any]], None]] = {
    "center": _center, "indent": _indent, "replace": _replace, "join": _join, "wordwrap": _wordwrap,
    "batch": _batch, "slice": _slice, "format": _format,
}


def _guarded_filter(function: Callable[..., Any], check: Callable[[dict[str, Any]], None]) -> Callable[..., Any]:
    signature = inspect.signature(function)
    # Jinja passes the context/environment first when the filter asks for it. Filters with an async
    # variant (``slice``, ``list``) report the signature of their sync version, which lacks that argument.
    passed = getattr(function, "jinja_pass_arg", None) is not None \
        and next(iter(signature.parameters)) not in {"context", "eval_ctx", "environment", "env"}
    skip = 1 if passed else 0

    @functools.wraps(function)  # keeps ``jinja_pass_arg``, so Jinja still passes the context it needs
    def guarded(*args: Any, **kwargs: Any) -> Any:
        bound = signature.bind(*args[skip:], **kwargs)
        check(bound.arguments)
        return _checked(function(*args[:skip], *bound.args, **bound.kwargs))

    return guarded


def _checked(result: Any) -> Any:
    if isinstance(result, str):
        _limit(len(result))
    return result


class HardenedEnvironment(ImmutableSandboxedEnvironment):
    intercepted_binops = frozenset({"*", "**", "%"})

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.globals.clear()
        self.globals["range"] = capped_range
        self.filters = {name: _guarded_filter(function, _FILTER_CHECKS[name]) if name in _FILTER_CHECKS else function
                        for name, function in self.filters.items() if name != "random"}

    def unsafe_undefined(self, obj: Any, attribute: Any) -> Undefined:
        raise SecurityError(f"access to attribute {attribute!r} of {type(obj).__name__!r} is not allowed")

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        wrapper = super().wrap_str_format(value)
        if wrapper is None:
            return None
        fmt = value.__self__

        def checked(*args: Any, **kwargs: Any) -> str:
            _check_brace_format(fmt)
            return _checked(wrapper(*args, **kwargs))

        return checked

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        if operator == "**" and isinstance(right, int | float) and (
                abs(right) > MAX_EXPONENT
                or (isinstance(left, int) and left.bit_length() * abs(right) > MAX_INTEGER_BITS)):
            refuse("number too large")
        if operator == "*":
            if isinstance(left, int) and isinstance(right, int) \
                    and left.bit_length() + right.bit_length() > MAX_INTEGER_BITS:
                refuse("number too large")
            for sequence, count in ((left, right), (right, left)):
                if isinstance(sequence, str | list | tuple) and isinstance(count, int) \
                        and len(sequence) * count > MAX_SEQUENCE:
                    refuse("result too long")
        if operator == "%" and isinstance(left, str):
            _check_percent_format(left)
        return _checked(super().call_binop(context, operator, left, right))

    def call(self, context: Any, obj: Any, /, *args: Any, **kwargs: Any) -> Any:
        owner = getattr(obj, "__self__", None)
        if isinstance(owner, str):
            args = _check_str_call(owner, getattr(obj, "__name__", ""), args, kwargs)
        return _checked(super().call(context, obj, *args, **kwargs))
