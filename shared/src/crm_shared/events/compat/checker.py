"""The proof that every document one schema accepts, another accepts too (``L(sub) ⊆ L(sup)``)."""

from __future__ import annotations

from collections.abc import Iterable
from fractions import Fraction
from typing import Any

from crm_shared.events.compat.bounds import _bound, _bound_covers, _num, _show_bound
from crm_shared.events.compat.breaks import Break
from crm_shared.events.compat.schema import (
    _FINITE_TYPES,
    DROPPABLE_FROM_OLD,
    UNDERSTOOD,
    _contains_ref,
    _merge,
    _ref_key,
    _strip,
    _trivial,
    _types,
)


class _Checker:
    """Proves ``L(sub) ⊆ L(sup)``; each node is resolved against its own document."""

    def __init__(self, sub_root: Any, sup_root: Any, sub_name: str, sup_name: str) -> None:
        self.sub_root, self.sup_root = sub_root, sup_root
        self.sub, self.sup = sub_name, sup_name
        self._assumed: set[tuple[tuple[str, Any], tuple[str, Any]]] = set()

    def run(self) -> list[Break]:
        problems: list[Break] = []
        if isinstance(self.sub_root, dict) and isinstance(self.sup_root, dict):
            dialects = self.sub_root.get("$schema"), self.sup_root.get("$schema")
            if None not in dialects and dialects[0] != dialects[1]:
                problems.append(Break("$", f"cannot prove compatible: $schema changed from {dialects[0]!r} "
                                           f"to {dialects[1]!r}", "unknown"))
        problems += self.subset(self.sub_root, self.sup_root, "$")
        unique: dict[str, Break] = {}
        for problem in problems:
            unique.setdefault(str(problem), problem)
        return list(unique.values())

    # ------------------------------------------------------------------ references

    def _resolve(self, ref: str, root: Any) -> Any:
        if not ref.startswith("#"):
            return None
        node = root
        for part in (p for p in ref[1:].split("/") if p):
            part = part.replace("~1", "/").replace("~0", "~")
            if isinstance(node, dict) and part in node:
                node = node[part]
            elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
                node = node[int(part)]
            else:
                return None
        return node

    def _old_view(self, node: Any, path: str, problems: list[Break]) -> Any:
        """The sub-side node with ``$ref`` followed (siblings merged in, an over-approximation)."""
        seen: set[str] = set()
        while isinstance(node, dict) and "$ref" in node:
            ref = node["$ref"]
            target = self._resolve(ref, self.sub_root) if isinstance(ref, str) else None
            if target is None or ref in seen:
                problems.append(Break(path, f"cannot prove compatible: cannot follow $ref {ref!r} in the "
                                            f"{self.sub} schema", "unknown"))
                return None
            seen.add(ref)
            rest = {k: v for k, v in node.items() if k != "$ref"}
            node = _merge(target, rest) if _strip(rest) else target
        return node

    # ------------------------------------------------------------------ sub ⊆ sup

    def subset(self, sub: Any, sup: Any, path: str) -> list[Break]:
        key = (_ref_key(sub), _ref_key(sup))
        if key in self._assumed:  # a recursive schema: assume the pair in progress holds (coinduction)
            return []
        self._assumed.add(key)
        try:
            return self._subset(sub, sup, path)
        finally:
            self._assumed.discard(key)

    def _subset(self, sub: Any, sup: Any, path: str) -> list[Break]:
        problems: list[Break] = []
        sub = self._old_view(sub, path, problems)
        if sub is None:
            return problems
        if _trivial(sup) or sub is False:
            return []
        if not isinstance(sup, bool | dict) or not isinstance(sub, bool | dict):
            return [Break(path, "cannot prove compatible: a schema is neither an object nor a boolean", "unknown")]
        if sub is True or _trivial(sub):
            return [Break(path, f"the {self.sub} schema accepts anything here, the {self.sup} one constrains it",
                          "type")]
        if sup is False:
            return [Break(path, f"the {self.sup} schema accepts nothing here", "type")]
        a, b = _strip(sub), _strip(sup)
        if a == b and not _contains_ref(a):
            return []

        # Split the old side into alternatives; each must be accepted.
        if "allOf" in a:
            merged: Any = {k: v for k, v in sub.items() if k != "allOf"}
            for part in a["allOf"]:
                part = self._old_view(part, path, problems)
                if part is None:
                    return problems
                merged = _merge(merged, part)
            return problems + self.subset(merged, sup, path)
        for combinator in ("anyOf", "oneOf"):  # a oneOf accepts no more than the anyOf of its branches
            if combinator in a:
                rest = {k: v for k, v in sub.items() if k not in ("anyOf", "oneOf")}
                for branch in a[combinator]:
                    branch = self._old_view(branch, path, problems)
                    if branch is not None:
                        problems += self.subset(_merge(rest, branch), sup, path)
                return problems
        sub_types = _types(a)
        if sub_types is not None and len(sub_types) != 1:
            for t in sorted(sub_types):
                problems += self.subset({**sub, "type": t}, sup, path)
            return problems

        # The new side: a reference is its target and its siblings, both to satisfy.
        if "$ref" in b:
            ref = b["$ref"]
            target = self._resolve(ref, self.sup_root) if isinstance(ref, str) else None
            if target is None:
                return [Break(path, f"cannot prove compatible: cannot follow $ref {ref!r} in the {self.sup} "
                                    "schema", "unknown")]
            problems += self.subset(sub, target, path)
            rest = {k: v for k, v in sup.items() if k != "$ref"}
            if _strip(rest):
                problems += self.subset(sub, rest, path)
            return problems
        if "allOf" in b:
            problems += self.subset(sub, {k: v for k, v in sup.items() if k != "allOf"}, path)
            for part in b["allOf"]:
                problems += self.subset(sub, part, path)
            return problems
        for combinator in ("anyOf", "oneOf"):
            if combinator in b:
                rest = {k: v for k, v in sup.items() if k != combinator}
                if _strip(rest):
                    problems += self.subset(sub, rest, path)
                return problems + self._one_branch(sub, b[combinator], combinator, path)

        return self._simple(a, b, path)

    def _one_branch(self, sub: dict[str, Any], branches: list[Any], combinator: str, path: str) -> list[Break]:
        """``sub`` is one alternative (no combinators, one type at most): a branch of ``sup`` must take it."""
        results = [self.subset(sub, branch, path) for branch in branches]
        fitting = [i for i, r in enumerate(results) if not r]
        if not fitting:
            best = min(results, key=lambda r: (any(p.kind == "type" for p in r), len(r))) if results else []
            return best or [Break(path, f"the {self.sup} schema's {combinator} has no branch", "type")]
        if combinator == "anyOf":
            return []
        chosen = fitting[0]
        for i, branch in enumerate(branches):
            if i != chosen and not self._disjoint(sub, branch):
                return [Break(path, f"cannot prove compatible: a document may match more than one branch of the "
                                    f"{self.sup} schema's oneOf", "unknown")]
        return []

    def _disjoint(self, sub: dict[str, Any], branch: Any) -> bool:
        """Provably no document satisfies both ``sub`` and ``branch`` (of the sup side)."""
        while isinstance(branch, dict) and "$ref" in branch and len(_strip(branch)) == 1:
            branch = self._resolve(branch["$ref"], self.sup_root)
        if branch is False:
            return True
        if not isinstance(branch, dict):
            return False
        finite = self._finite_values(sub)
        if finite is not None:
            return all(self._valid(value, branch) is False for value in finite)
        mine, theirs = _types(sub), _types(branch)
        if mine is None or theirs is None or any(k in branch for k in ("anyOf", "oneOf", "allOf")):
            return False
        widened = set(mine) | ({"number"} if "integer" in mine else set()) | (
            {"integer"} if "number" in mine else set())
        return not (widened & theirs)

    @staticmethod
    def _finite_values(node: dict[str, Any]) -> list[Any] | None:
        if "const" in node:
            return [node["const"]]
        if "enum" in node and isinstance(node["enum"], list):
            return list(node["enum"])
        types = _types(node)
        if types is not None and len(types) == 1 and next(iter(types)) in _FINITE_TYPES:
            return list(_FINITE_TYPES[next(iter(types))])
        return None

    def _valid(self, value: Any, schema: Any) -> bool | None:
        """Is ``value`` valid under a sup-side schema? ``None`` if that cannot be decided here."""
        try:
            from jsonschema import Draft202012Validator
            from jsonschema.exceptions import SchemaError
            from referencing.exceptions import Unresolvable
        except ImportError:  # a dev dependency, not a runtime one
            return None
        if isinstance(schema, dict) and isinstance(self.sup_root, dict) and "$defs" in self.sup_root:
            schema = {**schema, "$defs": self.sup_root["$defs"]}
        try:
            validator = Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)
            return bool(validator.is_valid(value))
        except (SchemaError, Unresolvable, TypeError, ValueError):
            return None

    # ------------------------------------------------------------------ one type against one schema

    def _simple(self, a: dict[str, Any], b: dict[str, Any], path: str) -> list[Break]:
        problems = [Break(path, f"cannot prove compatible: keyword {k!r} in the {self.sup} schema", "unknown")
                    for k in sorted(b.keys() - UNDERSTOOD)]
        problems += [Break(path, f"cannot prove compatible: keyword {k!r} in the {self.sub} schema", "unknown")
                     for k in sorted(a.keys() - UNDERSTOOD - DROPPABLE_FROM_OLD)]
        if problems:
            return problems

        sub_types, sup_types = _types(a), _types(b)
        t = next(iter(sub_types)) if sub_types else None
        if sup_types is not None and "enum" not in a and "const" not in a:
            if t is None:
                return [Break(path, f"type narrowed: the {self.sub} schema accepts any type, the {self.sup} one "
                                    f"only {sorted(sup_types)}", "type")]
            if t not in sup_types and not (t == "integer" and "number" in sup_types):
                return [Break(path, f"type narrowed: {t} is no longer accepted (the {self.sup} schema allows "
                                    f"{sorted(sup_types)})", "type")]

        finite = self._finite_values(a)
        if finite is not None:
            for value in finite:
                verdict = self._valid(value, b)
                if verdict is None:
                    problems.append(Break(path, f"cannot prove compatible: cannot check value {value!r}", "unknown"))
                elif not verdict:
                    what = "enum value" if "enum" in a or "const" in a else "value"
                    problems.append(Break(path, f"{what} {value!r} is no longer accepted", "constraint"))
            return problems
        if "enum" in b or "const" in b:
            allowed = [b["const"]] if "const" in b else b["enum"]
            return [Break(path, f"the {self.sup} schema allows only {allowed!r}, the {self.sub} one did not "
                                "restrict the values", "constraint")]

        if t in (None, "string", "number", "integer") and "format" in b and b["format"] != a.get("format"):
            problems.append(Break(path, f"format {b['format']!r} added (the {self.sub} schema had "
                                        f"{a.get('format')!r})", "constraint"))
        if t in (None, "string"):
            problems += self._lengths(a, b, "minLength", "maxLength", "length", path)
            if "pattern" in b and b["pattern"] != a.get("pattern"):
                problems.append(Break(path, f"cannot prove compatible: pattern {b['pattern']!r} added or changed "
                                            f"(the {self.sub} schema had {a.get('pattern')!r})", "unknown"))
        if t in (None, "number", "integer"):
            problems += self._numbers(a, b, t == "integer", path)
        if t in (None, "array"):
            problems += self._lengths(a, b, "minItems", "maxItems", "number of items", path)
            if b.get("uniqueItems") and not a.get("uniqueItems"):
                problems.append(Break(path, "uniqueItems added", "constraint"))
            problems += self.subset(a.get("items", True), b.get("items", True), f"{path}[]")
        if t in (None, "object"):
            problems += self._lengths(a, b, "minProperties", "maxProperties", "number of properties", path)
            problems += self._objects(a, b, path)
        return problems

    def _lengths(self, a: dict[str, Any], b: dict[str, Any], low: str, high: str, what: str,
                 path: str) -> list[Break]:
        problems = []
        for key, lower in ((low, True), (high, False)):
            sub = (_num(a[key]), False) if key in a else None
            sup = (_num(b[key]), False) if key in b else None
            if (sub is not None and sub[0] is None) or (sup is not None and sup[0] is None):
                problems.append(Break(path, f"cannot prove compatible: cannot read {key}", "unknown"))
            elif lower:
                if not _bound_covers(sub or (Fraction(0), False), sup, True):
                    problems.append(Break(path, f"{key} raised: {what} {_show_bound(sub, True)} -> "
                                                f"{_show_bound(sup, True)}", "constraint"))
            elif not _bound_covers(sub, sup, False):
                problems.append(Break(path, f"{key} lowered or added: {what} {_show_bound(sub, False)} -> "
                                            f"{_show_bound(sup, False)}", "constraint"))
        return problems

    def _numbers(self, a: dict[str, Any], b: dict[str, Any], integer: bool, path: str) -> list[Break]:
        problems = []
        for lower, name in ((True, "lower"), (False, "upper")):
            sub, sup = _bound(a, lower, integer), _bound(b, lower, integer)
            if isinstance(sub, str) or isinstance(sup, str):
                problems.append(Break(path, f"cannot prove compatible: {sub if isinstance(sub, str) else sup}",
                                      "unknown"))
            elif not _bound_covers(sub, sup, lower):
                problems.append(Break(path, f"{name} bound tightened: {_show_bound(sub, lower)} -> "
                                            f"{_show_bound(sup, lower)}", "constraint"))
        if "multipleOf" in b:
            step_b, step_a = _num(b["multipleOf"]), _num(a.get("multipleOf"))
            if step_b is None or step_b <= 0:
                problems.append(Break(path, "cannot prove compatible: cannot read multipleOf", "unknown"))
            elif not ((integer and step_b == 1) or (step_a is not None and (step_a / step_b).denominator == 1)):
                problems.append(Break(path, f"multipleOf {b['multipleOf']!r} added or changed (the {self.sub} "
                                            f"schema had {a.get('multipleOf')!r})", "constraint"))
        return problems

    def _objects(self, a: dict[str, Any], b: dict[str, Any], path: str) -> list[Break]:
        problems = []
        sub_required = set(a.get("required", []))
        for name in _ordered(b.get("required", []), lambda n: n not in sub_required):
            problems.append(Break(f"{path}.{name}", f"property {name!r} is newly required", "constraint"))
        sub_props, sup_props = a.get("properties", {}), b.get("properties", {})
        sub_extra, sup_extra = a.get("additionalProperties", True), b.get("additionalProperties", True)
        for name in _ordered([*sub_props, *sup_props], lambda n: True):
            where = f"{path}.{name}"
            if name in sub_props:
                sub_schema = sub_props[name]
            elif _trivial(sub_extra):
                continue  # undeclared in the old schema: no promise (the documented relaxation)
            else:
                sub_schema = sub_extra
            if name in sup_props:
                problems += self.subset(sub_schema, sup_props[name], where)
            elif sup_extra is False and name in sub_props:
                problems.append(Break(where, f"property {name!r} removed while additionalProperties is false",
                                      "constraint"))
            else:
                problems += self.subset(sub_schema, sup_extra, where)
        if sup_extra is False and sub_extra is not False:
            problems.append(Break(f"{path}.*", "additionalProperties changed from allowed to false: a property "
                                               f"the {self.sup} schema does not declare is now rejected",
                                  "constraint"))
        else:
            problems += self.subset(sub_extra, sup_extra, f"{path}.*")
        return problems


def _ordered(names: Iterable[str], keep: Any) -> list[str]:
    seen: dict[str, None] = {}
    for name in names:
        if keep(name):
            seen.setdefault(name, None)
    return list(seen)
