"""The JSON Schema keywords the checker knows, and helpers that read one schema node."""

from __future__ import annotations

from typing import Any

ANNOTATIONS = frozenset({
    "title", "description", "default", "examples", "$comment", "deprecated", "readOnly", "writeOnly",
    "$id", "$schema", "$anchor", "$vocabulary", "$defs", "definitions", "contentEncoding",
    "contentMediaType", "contentSchema",
})
# What the checker can reason about in either schema.
UNDERSTOOD = frozenset({
    "type", "enum", "const", "$ref", "anyOf", "oneOf", "allOf", "properties", "required",
    "additionalProperties", "items", "format", "pattern", "minimum", "maximum", "exclusiveMinimum",
    "exclusiveMaximum", "multipleOf", "minLength", "maxLength", "minItems", "maxItems", "uniqueItems",
    "minProperties", "maxProperties",
})
# Pure restrictions: dropping them from the old schema only widens it, so the proof stays sound.
DROPPABLE_FROM_OLD = frozenset({
    "not", "if", "then", "else", "dependentRequired", "dependentSchemas", "contains", "minContains",
    "maxContains", "propertyNames", "unevaluatedProperties", "unevaluatedItems",
})
_OBJECT_GROUP = frozenset({"properties", "additionalProperties", "patternProperties", "unevaluatedProperties"})
_ARRAY_GROUP = frozenset({"items", "prefixItems", "unevaluatedItems", "contains", "minContains", "maxContains"})
_FINITE_TYPES: dict[str, list[Any]] = {"null": [None], "boolean": [False, True]}


def _strip(node: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in node.items() if k not in ANNOTATIONS and not k.startswith("x-")}


def _trivial(node: Any) -> bool:
    """Accepts every document (``true``, ``{}`` or only annotations)."""
    return node is True or (isinstance(node, dict) and not _strip(node))


def _types(node: dict[str, Any]) -> set[str] | None:
    t = node.get("type")
    if t is None:
        return None
    return {t} if isinstance(t, str) else set(t)


def _merge(base: Any, extra: Any) -> Any:
    """An over-approximation of ``base ∩ extra`` (used on the old side only: it may accept more, never less).

    ``extra``'s keywords win; keywords that change each other's meaning (``properties`` and
    ``additionalProperties``, ``items`` and ``prefixItems``) are taken as a group from one side.
    """
    if base is False or extra is False:
        return False
    if base is True:
        return extra
    if extra is True:
        return base
    merged = dict(base)
    for group in (_OBJECT_GROUP, _ARRAY_GROUP):
        if group & extra.keys():
            for key in group:
                merged.pop(key, None)
    merged.update(extra)
    return merged


def _ref_key(node: Any) -> tuple[str, Any]:
    if isinstance(node, dict) and isinstance(node.get("$ref"), str):
        return ("ref", node["$ref"])
    return ("id", id(node))


def _contains_ref(node: Any) -> bool:
    if isinstance(node, dict):
        return "$ref" in node or any(_contains_ref(v) for v in node.values())
    if isinstance(node, list):
        return any(_contains_ref(v) for v in node)
    return False
