"""Is a new JSON Schema of an event's data compatible with the old one?

The rule (Confluent's BACKWARD, the usual one for event data): **every document the old schema accepts,
the new schema accepts too.** That protects both sides of the contract:

* consumers: new code still reads every event already on the topic (replays, the dead-letter backlog,
  a consumer that is behind), because those events were valid under the old schema;
* publishers: a system that follows the schema it was given is never rejected after a CRM release.

So, for example, a property newly required, a type narrowed, an enum value removed, a bound tightened,
``additionalProperties`` going from allowed to ``false`` or a property removed while it is ``false``
are breaking; an optional property added, an enum value added, a bound loosened, a type widened or a
description changed are not. ``mode="forward"`` checks the other direction (old code reads new events:
the new schema accepts nothing the old one refused) and ``mode="full"`` both; CI enforces BACKWARD.

One deliberate relaxation, the same as every schema registry makes for an open content model: a
property the old schema did not *declare* (it only fell under ``additionalProperties: true``) carries
no promise, so the new schema may give that name a schema (that is how an optional property is added).
Where the old schema gave undeclared properties a schema of their own (``dict[str, str]`` emits
``additionalProperties: {"type": "string"}``), a new property must accept what that schema accepted.

The checker is a proof of "old ⊆ new" over the keywords pydantic emits: ``type`` (and lists of types),
``enum``/``const``, ``$ref`` into the document (``#/…``), ``anyOf``/``oneOf``/``allOf``, ``properties``,
``required``, ``additionalProperties``, ``items``, ``format``, ``pattern``, ``minimum``/``maximum``/
``exclusiveMinimum``/``exclusiveMaximum``, ``multipleOf``, ``minLength``/``maxLength``,
``minItems``/``maxItems``, ``uniqueItems``, ``minProperties``/``maxProperties``. Annotations (``title``,
``description``, ``default``, ``examples``, ``x-*`` …) are ignored. Whatever it cannot reason about
(a changed ``pattern``, ``patternProperties``, ``prefixItems``, an external ``$ref``, an unknown
keyword in the new schema …) is reported as breaking ("cannot prove compatible"), never accepted
silently. Restrictions only the old schema has (``not``, ``if``/``then``, ``contains`` …) are dropped
from it, which can only make the old schema accept more, so that stays sound.

Why not a library: of the packages on PyPI, ``jsonschema-diff`` renders a structural diff (added,
removed, changed keywords) with no notion of which changes break a reader; the ``jsonschema-changelog``
0.2.0 wheel contains no code at all (metadata only); ``jsonsubschema`` decides inclusion but only for
draft 4 (no ``$defs``, numeric ``exclusiveMinimum``) and pulls in ``greenery``/``portion``.
"""

from __future__ import annotations

from typing import Any

from crm_shared.events.compat.breaks import Break, Mode
from crm_shared.events.compat.checker import _Checker
from crm_shared.events.compat.schema import ANNOTATIONS, DROPPABLE_FROM_OLD, UNDERSTOOD

__all__ = ["ANNOTATIONS", "DROPPABLE_FROM_OLD", "UNDERSTOOD", "Break", "Mode", "backward_breaks", "breaking_changes",
           "is_backward_compatible"]


def breaking_changes(old: Any, new: Any, mode: Mode = "backward") -> list[Break]:
    """The reasons ``new`` is not compatible with ``old`` under ``mode``; empty when it is (proven)."""
    if mode == "backward":
        return _Checker(old, new, "old", "new").run()
    if mode == "forward":
        return _Checker(new, old, "new", "old").run()
    if mode == "full":
        return ([Break(b.path, f"backward: {b.message}", b.kind) for b in breaking_changes(old, new, "backward")]
                + [Break(b.path, f"forward: {b.message}", b.kind) for b in breaking_changes(old, new, "forward")])
    raise ValueError(f"unknown compatibility mode {mode!r}")


def backward_breaks(old: Any, new: Any) -> list[Break]:
    """BACKWARD: what the new schema rejects that the old one accepted (the rule CI enforces)."""
    return breaking_changes(old, new, "backward")


def is_backward_compatible(old: Any, new: Any) -> bool:
    return not backward_breaks(old, new)

