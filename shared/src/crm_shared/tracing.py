"""W3C Trace Context (``traceparent``) carried through HTTP and Kafka headers.

We do not run a tracer; we keep the trace id flowing so logs of one customer action can be joined
across services, and an OpenTelemetry SDK can be added later without changing the headers.
"""

from __future__ import annotations

import random
import re
from contextvars import ContextVar

_TRACEPARENT = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")

current_traceparent: ContextVar[str | None] = ContextVar("current_traceparent", default=None)

# Trace and span ids must be unique, not secret (W3C Trace Context §3.2.2.3): a PRNG seeded from the
# OS is enough. secrets.token_hex made a system call per id, visible in the profile of the loyalty
# consumer (py-spy, docs/benchmarks.md), which emits one event per order.
_ids = random.Random()


def new_traceparent() -> str:
    return f"00-{_ids.getrandbits(128) or 1:032x}-{_ids.getrandbits(64) or 1:016x}-01"


def child_traceparent(parent: str | None) -> str:
    """A traceparent for work caused by ``parent``: same trace id, new span id."""
    if parent and (m := _TRACEPARENT.match(parent)) and m.group(1) != "0" * 32:
        return f"00-{m.group(1)}-{_ids.getrandbits(64) or 1:016x}-{m.group(3)}"
    return new_traceparent()


def valid_traceparent(value: str | None) -> str | None:
    return value if value and _TRACEPARENT.match(value) else None
