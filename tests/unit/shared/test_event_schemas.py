"""The JSON Schemas of event data (``docs/events/schemas``) and their backward-compatibility check.

* the committed files are exactly what ``crm_shared.events.schemas`` generates from the catalogue;
* every committed file is backward compatible with every earlier committed version of itself (git
  history), so a breaking change to a published schema fails CI;
* the compatibility checker (``crm_shared.events.compat``) on small hand-made pairs, one per rule;
* the schemas and the pydantic models agree on real events and on broken ones;
* ``docs/asyncapi.yaml`` names the same properties and required fields as the schema files.
"""

from __future__ import annotations

import copy
import json
import re
import shutil
import subprocess
import warnings
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import pytest
import yaml
from crm_shared.events.catalogue import CATALOGUE, EventData
from crm_shared.events.compat import Break, backward_breaks, breaking_changes, is_backward_compatible
from crm_shared.events.schemas import (
    JSON_SCHEMA_DIALECT,
    MONEY_PATTERN,
    check_schemas,
    event_schemas,
    main,
    render,
    schema_of,
    write_schemas,
)
from jsonschema import Draft202012Validator, FormatChecker
from pydantic import BaseModel, Field, ValidationError

from tests.harness import events as harness

ROOT = Path(__file__).resolve().parents[3]
SCHEMA_DIR = ROOT / "docs" / "events" / "schemas"
SCHEMA_DIR_IN_REPO = "docs/events/schemas"
ASYNCAPI = ROOT / "docs" / "asyncapi.yaml"
REGENERATE = "python -m crm_shared.events.schemas --write"


def committed_file(event_type: str) -> dict[str, Any]:
    return json.loads((SCHEMA_DIR / f"{event_type}.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def committed() -> dict[str, dict[str, Any]]:
    return {event_type: committed_file(event_type) for event_type in CATALOGUE}


@pytest.fixture(scope="module")
def asyncapi() -> dict[str, Any]:
    return yaml.safe_load(ASYNCAPI.read_text(encoding="utf-8"))


# --------------------------------------------------------------------------- the files


def test_the_committed_schemas_are_the_generated_ones():
    problems = check_schemas(SCHEMA_DIR)
    assert not problems, ("docs/events/schemas differs from the event catalogue:\n  " + "\n  ".join(problems)
                          + f"\nRun `{REGENERATE}` and commit the files (a breaking change needs a new event "
                            "type instead, see docs/events.md).")


def test_there_is_exactly_one_file_per_catalogue_type_and_no_stale_file():
    present = sorted(p.name for p in SCHEMA_DIR.iterdir())
    expected = sorted(f"{event_type}.json" for event_type in CATALOGUE)
    assert present == expected, (f"stale: {sorted(set(present) - set(expected))}, "
                                 f"missing: {sorted(set(expected) - set(present))}; run `{REGENERATE}`")


def test_each_file_is_a_self_contained_2020_12_schema_named_by_its_dataschema(committed):
    for event_type, schema in committed.items():
        Draft202012Validator.check_schema(schema)
        assert schema["$schema"] == JSON_SCHEMA_DIALECT, event_type
        assert schema["$id"] == CATALOGUE[event_type].dataschema, event_type
        assert schema["$id"] == f"https://crm.example/schemas/{event_type}/v1.json", event_type
        assert schema["title"] == event_type
        assert schema["type"] == "object", event_type
        for ref in re.findall(r'"\$ref": "([^"]*)"', json.dumps(schema)):
            assert ref.startswith("#/$defs/") and ref.removeprefix("#/$defs/") in schema["$defs"], (event_type, ref)


def test_the_files_are_rendered_stably(committed):
    for event_type, schema in committed.items():
        text = (SCHEMA_DIR / f"{event_type}.json").read_text(encoding="utf-8")
        assert text == json.dumps(schema, indent=2, sort_keys=True, ensure_ascii=False) + "\n", event_type
    generated = event_schemas()
    assert render(generated["commerce.order.paid"]) == render(event_schemas()["commerce.order.paid"])
    assert list(generated) == sorted(CATALOGUE)


def test_write_and_check_round_trip(tmp_path, capsys):
    assert len(write_schemas(tmp_path)) == len(CATALOGUE)
    assert check_schemas(tmp_path) == []
    assert main(["--check", "--dir", str(tmp_path)]) == 0
    assert write_schemas(tmp_path) == []  # nothing to do the second time

    paid = tmp_path / "commerce.order.paid.json"
    paid.write_text(paid.read_text().replace('"maxItems": 1000', '"maxItems": 5'))
    (tmp_path / "commerce.order.shipped.json").write_text("{}\n")
    (tmp_path / "crm.churn.risk.changed.json").unlink()
    problems = check_schemas(tmp_path)
    assert any("commerce.order.paid.json: differs from the catalogue (backward compatible)" in p for p in problems)
    assert any("commerce.order.shipped.json" in p and "stale" in p for p in problems)
    assert any("crm.churn.risk.changed.json: missing" in p for p in problems)
    capsys.readouterr()
    assert main(["--check", "--dir", str(tmp_path)]) == 1
    assert REGENERATE in capsys.readouterr().err

    paid.write_text(paid.read_text().replace('"maxItems": 5', '"maxItems": 1000').replace(
        '"required": [\n    "order_id",', '"required": [\n    "order_id",\n    "items",'))
    assert json.loads(paid.read_text())["required"][1] == "items"
    problems = check_schemas(tmp_path)
    # the files say items was required; the catalogue makes it optional: compatible. The other way round:
    assert any("commerce.order.paid.json: differs from the catalogue (backward compatible)" in p for p in problems)
    paid.write_text(render({**event_schemas()["commerce.order.paid"], "required": ["order_id"]}))
    assert any("commerce.order.paid.json" in p and "NOT backward compatible" in p and "customer_id" in p
               for p in check_schemas(tmp_path))

    write_schemas(tmp_path)
    assert check_schemas(tmp_path) == []
    assert not (tmp_path / "commerce.order.shipped.json").exists()


# --------------------------------------------------------------------------- history: published means frozen


def git_history(repo: Path, directory: str) -> dict[str, list[tuple[str, Any]]] | None:
    """File name → ``[(commit, schema), …]``, newest first, for every commit that touched the file.

    ``None`` when there is no git or ``repo`` is not a git work tree. One ``git log`` and one
    ``git cat-file --batch``, however long the history.
    """
    if shutil.which("git") is None or not (repo / ".git").exists():
        return None
    try:
        log = subprocess.run(["git", "log", "--format=%x00%H", "--name-only", "--no-renames", "--", directory],
                             cwd=repo, capture_output=True, text=True, check=True, timeout=60).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    wanted: list[tuple[str, str]] = []  # (commit, path)
    commit = ""
    for line in log.splitlines():
        if line.startswith("\x00"):
            commit = line[1:]
        elif line.strip() and line.endswith(".json"):
            wanted.append((commit, line.strip()))
    history: dict[str, list[tuple[str, Any]]] = {}
    if not wanted:
        return history
    batch = subprocess.run(["git", "cat-file", "--batch"], cwd=repo, check=True, capture_output=True, timeout=60,
                           input="".join(f"{c}:{p}\n" for c, p in wanted).encode()).stdout
    offset = 0
    for commit, path in wanted:
        end = batch.index(b"\n", offset)
        header = batch[offset:end].decode()
        offset = end + 1
        if header.endswith(" missing"):  # the commit deleted the file
            continue
        size = int(header.split()[2])
        blob = batch[offset:offset + size]
        offset += size + 1
        history.setdefault(Path(path).name, []).append((commit, json.loads(blob)))
    return history


def is_shallow(repo: Path) -> bool:
    out = subprocess.run(["git", "rev-parse", "--is-shallow-repository"], cwd=repo, capture_output=True,
                         text=True, timeout=60)
    return out.stdout.strip() == "true"


def history_breaks(history: dict[str, list[tuple[str, Any]]], current: dict[str, Any]) -> list[str]:
    failures = []
    for name, schema in sorted(current.items()):
        for commit, old in history.get(name, []):
            failures += [f"{name} (vs {commit[:12]}): {b}" for b in backward_breaks(old, schema)]
    return failures


def test_the_catalogue_is_backward_compatible_with_the_committed_files(committed):
    """Generated (the code now) against the files on disk (what was published): the message says why
    regenerating will not help when the change itself is breaking."""
    generated = event_schemas()
    failures = [f"{t}: {b}" for t in CATALOGUE for b in backward_breaks(committed[t], generated[t])]
    assert not failures, ("the catalogue change is not backward compatible with the published schema:\n  "
                          + "\n  ".join(failures)
                          + "\nAdd a new event type (or dataschema version) instead; see docs/events.md.")


def test_every_schema_is_backward_compatible_with_every_earlier_committed_version():
    """Each file on disk against every version of it in ``git log -- docs/events/schemas/<type>.json``.

    CI runs in a full clone, so the whole history is there (a shallow clone only has what it fetched:
    a warning says so; fetch with depth 0). Without git or a ``.git`` directory (an exported tree)
    it falls back to the HEAD version only, that is the files on disk, which
    ``test_the_catalogue_is_backward_compatible_with_the_committed_files`` compares with the catalogue;
    a warning says so, it is not skipped.
    """
    current = {p.name: json.loads(p.read_text(encoding="utf-8")) for p in SCHEMA_DIR.glob("*.json")}
    history = git_history(ROOT, SCHEMA_DIR_IN_REPO)
    if history is None:
        warnings.warn("no git history here: event schemas are checked against HEAD (the files on disk) only",
                      stacklevel=1)
        generated = {f"{t}.json": s for t, s in event_schemas().items()}
        history = {name: [("HEAD", schema)] for name, schema in current.items()}
        current = {name: generated[name] for name in current if name in generated}
    else:
        if is_shallow(ROOT):
            warnings.warn("shallow clone: event schemas are checked against the fetched history only", stacklevel=1)
        assert any(history.values()), f"git log found no committed version of {SCHEMA_DIR_IN_REPO}"
    failures = history_breaks(history, current)
    assert not failures, ("a published event schema changed incompatibly:\n  " + "\n  ".join(failures)
                          + "\nPublished schemas only evolve compatibly; add a new event type (or dataschema "
                            "version) for a breaking change, see docs/events.md.")


@pytest.mark.skipif(shutil.which("git") is None, reason="needs the git command")
def test_the_history_check_catches_a_breaking_commit(tmp_path):
    def git(*args: str) -> None:
        subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args], cwd=tmp_path,
                       check=True, capture_output=True)

    schema_dir = tmp_path / "schemas"
    schema_dir.mkdir()
    path = schema_dir / "x.json"
    v1 = {"type": "object", "properties": {"a": {"type": "string"}}, "required": []}
    v2 = {**v1, "properties": {"a": {"type": "string"}, "b": {"type": "integer"}}}  # compatible
    v3 = {**v2, "required": ["b"]}  # breaking
    git("init", "-q")
    for version in (v1, v2):
        path.write_text(render(version))
        git("add", "schemas")
        git("commit", "-q", "-m", "v")
    history = git_history(tmp_path, "schemas")
    assert [s for _, s in history["x.json"]] == [v2, v1]
    assert history_breaks(history, {"x.json": v2}) == []
    failures = history_breaks(history, {"x.json": v3})
    assert len(failures) == 2 and all("'b' is newly required" in f for f in failures)
    path.unlink()
    git("commit", "-q", "-am", "removed")
    assert len(git_history(tmp_path, "schemas")["x.json"]) == 2


# --------------------------------------------------------------------------- the compatibility checker


def obj(properties: dict[str, Any], required: list[str] | None = None, **extra: Any) -> dict[str, Any]:
    return {"type": "object", "properties": properties, "required": required or [], **extra}


S = {"type": "string"}
OPTIONAL_S = {"anyOf": [{"type": "string"}, {"type": "null"}], "default": None}
ITEM = {"type": "object", "properties": {"sku": S, "quantity": {"type": "integer", "maximum": 10}},
        "required": ["sku"]}

# (name, old, new, a phrase of the one expected break). Each is breaking from old to new; the reverse
# direction (new -> old) is the matching non-breaking change and must pass.
BREAKING = [
    ("property newly required", obj({"a": S, "b": S}, ["a"]), obj({"a": S, "b": S}, ["a", "b"]),
     "'b' is newly required"),
    ("type narrowed number to integer", obj({"n": {"type": "number"}}), obj({"n": {"type": "integer"}}),
     "type narrowed: number"),
    ("type list narrowed", obj({"v": {"type": ["string", "integer"]}}), obj({"v": S}), "type narrowed: integer"),
    ("nullable made non-null", obj({"v": OPTIONAL_S}), obj({"v": S}), "type narrowed: null"),
    ("enum value removed", obj({"k": {"enum": ["a", "b", "c"]}}), obj({"k": {"enum": ["a", "b"]}}),
     "enum value 'c' is no longer accepted"),
    ("const changed", obj({"k": {"const": "a"}}), obj({"k": {"const": "b"}}), "'a' is no longer accepted"),
    ("enum imposed", obj({"k": S}), obj({"k": {"type": "string", "enum": ["a"]}}), "allows only ['a']"),
    ("maximum tightened", obj({"n": {"type": "integer", "maximum": 10}}),
     obj({"n": {"type": "integer", "maximum": 5}}), "upper bound tightened: <= 10 -> <= 5"),
    ("minimum added", obj({"n": {"type": "number"}}), obj({"n": {"type": "number", "minimum": 0}}),
     "lower bound tightened: none -> >= 0"),
    ("exclusiveMinimum from minimum", obj({"n": {"type": "number", "minimum": 0}}),
     obj({"n": {"type": "number", "exclusiveMinimum": 0}}), "lower bound tightened: >= 0 -> > 0"),
    ("exclusiveMaximum tightened", obj({"n": {"type": "number", "exclusiveMaximum": 2}}),
     obj({"n": {"type": "number", "exclusiveMaximum": 1}}), "upper bound tightened: < 2 -> < 1"),
    ("maxLength lowered", obj({"s": {"type": "string", "maxLength": 200}}),
     obj({"s": {"type": "string", "maxLength": 100}}), "maxLength lowered or added"),
    ("minLength raised", obj({"s": {"type": "string"}}), obj({"s": {"type": "string", "minLength": 1}}),
     "minLength raised"),
    ("maxItems lowered", obj({"l": {"type": "array", "items": S, "maxItems": 1000}}),
     obj({"l": {"type": "array", "items": S, "maxItems": 10}}), "maxItems lowered or added"),
    ("minItems raised", obj({"l": {"type": "array", "items": S}}),
     obj({"l": {"type": "array", "items": S, "minItems": 1}}), "minItems raised"),
    ("items narrowed", obj({"l": {"type": "array", "items": {"type": "number"}}}),
     obj({"l": {"type": "array", "items": {"type": "integer"}}}), "$.l[]: type narrowed"),
    ("format added", obj({"t": S}), obj({"t": {"type": "string", "format": "date-time"}}),
     "format 'date-time' added"),
    ("additionalProperties allowed to false", obj({"a": S}), obj({"a": S}, additionalProperties=False),
     "additionalProperties changed from allowed to false"),
    ("additionalProperties schema narrowed", obj({}, additionalProperties={"type": "number"}),
     obj({}, additionalProperties={"type": "integer"}), "$.*: type narrowed"),
    ("property removed while additionalProperties is false", obj({"a": S, "b": S}, additionalProperties=False),
     obj({"a": S}, additionalProperties=False), "'b' removed while additionalProperties is false"),
    ("property's type narrowed through $ref", {**obj({"i": {"$ref": "#/$defs/Item"}}), "$defs": {"Item": ITEM}},
     {**obj({"i": {"$ref": "#/$defs/Item"}}), "$defs": {"Item": {
         **ITEM, "properties": {**ITEM["properties"], "quantity": {"type": "integer", "maximum": 5}}}}},
     "$.i.quantity: upper bound tightened"),
    ("anyOf branch removed", obj({"v": {"anyOf": [S, {"type": "integer"}, {"type": "null"}]}}),
     obj({"v": {"anyOf": [S, {"type": "null"}]}}), "type narrowed: integer"),
    ("allOf adds a constraint", obj({"v": S}), obj({"v": {"allOf": [S, {"maxLength": 3}]}}),
     "maxLength lowered or added"),
    ("oneOf loses a branch", obj({"v": {"oneOf": [S, {"type": "integer"}]}}), obj({"v": {"oneOf": [S]}}),
     "type narrowed: integer"),
    ("uniqueItems added", obj({"l": {"type": "array"}}), obj({"l": {"type": "array", "uniqueItems": True}}),
     "uniqueItems added"),
    ("multipleOf added", obj({"n": {"type": "number"}}), obj({"n": {"type": "number", "multipleOf": 0.5}}),
     "multipleOf 0.5 added"),
    ("a new property's schema excludes what additionalProperties allowed",
     obj({}, additionalProperties={"type": "string"}), obj({"CNY": {"type": "integer"}},
                                                           additionalProperties={"type": "string"}),
     "$.CNY: type narrowed: string"),
    ("maxProperties added", obj({}), obj({}, maxProperties=3), "maxProperties lowered or added"),
    ("top-level type changed", {"type": "object"}, {"type": "array"}, "type narrowed: object"),
]

# Changes whose reverse breaks as well.
SYMMETRIC = {"const changed", "a new property's schema excludes what additionalProperties allowed",
             "top-level type changed"}

NON_BREAKING = [
    ("optional property added", obj({"a": S}, ["a"]), obj({"a": S, "b": OPTIONAL_S}, ["a"])),
    ("enum value added", obj({"k": {"enum": ["a", "b"]}}), obj({"k": {"enum": ["a", "b", "c"]}})),
    ("bound loosened", obj({"n": {"type": "integer", "minimum": 1, "maximum": 5}}),
     obj({"n": {"type": "integer", "minimum": 0, "maximum": 50}})),
    ("description and title changes", obj({"a": {**S, "description": "x", "title": "A"}}, description="old"),
     obj({"a": {**S, "description": "y", "examples": ["z"]}}, description="new", title="T")),
    ("integer > 0 is integer >= 1", obj({"q": {"type": "integer", "exclusiveMinimum": 0}}),
     obj({"q": {"type": "integer", "minimum": 1}})),
    ("required made optional", obj({"a": S}, ["a"]), obj({"a": OPTIONAL_S})),
    ("property removed from an open schema", obj({"a": S, "b": S}), obj({"a": S})),
    ("additionalProperties false to allowed", obj({"a": S}, additionalProperties=False), obj({"a": S})),
    ("type widened to a list", obj({"v": S}), obj({"v": {"type": ["string", "null"]}})),
    ("integer widened to number", obj({"v": {"type": "integer"}}), obj({"v": {"type": "number"}})),
    ("enum values fit the new constraints", obj({"k": {"type": "string", "enum": ["ab", "cd"]}}),
     obj({"k": {"type": "string", "maxLength": 2, "pattern": "^[a-d]+$"}})),
    ("a $def renamed", {**obj({"i": {"$ref": "#/$defs/Item"}}), "$defs": {"Item": ITEM}},
     {**obj({"i": {"$ref": "#/$defs/OrderItem"}}), "$defs": {"OrderItem": ITEM}}),
    ("a $ref inlined", {**obj({"i": {"$ref": "#/$defs/Item"}}), "$defs": {"Item": ITEM}}, obj({"i": ITEM})),
    ("oneOf with disjoint branches", obj({"v": S}), obj({"v": {"oneOf": [S, {"type": "null"}]}})),
    ("format removed", obj({"t": {"type": "string", "format": "date"}}), obj({"t": S})),
    ("x- annotations ignored", obj({"a": S}), obj({"a": {**S, "x-note": 1}}, **{"x-topic": "t"})),
]

CANNOT_PROVE = [
    ("pattern changed", obj({"c": {"type": "string", "pattern": "^[A-Z]{3}$"}}),
     obj({"c": {"type": "string", "pattern": "^[A-Z]{2,3}$"}}), "pattern"),
    ("patternProperties", obj({}), obj({}, patternProperties={"^x": S}), "keyword 'patternProperties'"),
    ("external $ref", obj({"a": S}), obj({"a": {"$ref": "https://example.com/a.json"}}), "cannot follow $ref"),
    ("dangling $ref", obj({"a": S}), obj({"a": {"$ref": "#/$defs/Nope"}}), "cannot follow $ref"),
    ("unknown keyword in the new schema", obj({"a": S}), obj({"a": S}, dependentRequired={"a": ["b"]}),
     "keyword 'dependentRequired'"),
    ("prefixItems in the old schema", obj({"l": {"type": "array", "prefixItems": [S]}}),
     obj({"l": {"type": "array", "items": S}}), "keyword 'prefixItems'"),
    ("oneOf with overlapping branches", obj({"v": {"type": "integer"}}),
     obj({"v": {"oneOf": [{"type": "integer"}, {"type": "number"}]}}), "more than one branch"),
    ("draft-4 boolean exclusiveMinimum", obj({"n": {"type": "number", "minimum": 0}}),
     obj({"n": {"type": "number", "minimum": 0, "exclusiveMinimum": True}}), "cannot read exclusiveMinimum"),
    ("$schema changed", {"$schema": JSON_SCHEMA_DIALECT, **obj({})},
     {"$schema": "http://json-schema.org/draft-07/schema#", **obj({})}, "$schema changed"),
    ("a new schema for an unconstrained old one", obj({"a": {}}), obj({"a": S}), "accepts anything"),
]


@pytest.mark.parametrize(("name", "old", "new", "phrase"), BREAKING, ids=[c[0] for c in BREAKING])
def test_a_breaking_change_is_reported(name, old, new, phrase):
    breaks = backward_breaks(old, new)
    assert len(breaks) == 1, breaks
    assert phrase in str(breaks[0]), breaks
    assert not is_backward_compatible(old, new)
    assert backward_breaks(old, old) == [] and backward_breaks(new, new) == []
    if name not in SYMMETRIC:
        assert backward_breaks(new, old) == [], f"the reverse of {name!r} should be compatible"
    else:
        assert backward_breaks(new, old), f"the reverse of {name!r} breaks too"


@pytest.mark.parametrize(("name", "old", "new"), NON_BREAKING, ids=[c[0] for c in NON_BREAKING])
def test_a_compatible_change_is_accepted(name, old, new):
    assert backward_breaks(old, new) == []
    assert is_backward_compatible(old, new)


@pytest.mark.parametrize(("name", "old", "new", "phrase"), CANNOT_PROVE, ids=[c[0] for c in CANNOT_PROVE])
def test_what_the_checker_cannot_reason_about_is_breaking(name, old, new, phrase):
    breaks = backward_breaks(old, new)
    assert breaks and any(phrase in str(b) for b in breaks), breaks


def test_breaks_name_their_place_in_the_data():
    old = {**obj({"items": {"type": "array", "items": {"$ref": "#/$defs/Item"}}}), "$defs": {"Item": ITEM}}
    new = copy.deepcopy(old)
    new["$defs"]["Item"]["required"] = ["sku", "quantity"]
    assert backward_breaks(old, new) == [Break("$.items[].quantity", "property 'quantity' is newly required")]


def test_forward_and_full_modes_check_the_other_direction():
    old, new = obj({"k": {"enum": ["a"]}}), obj({"k": {"enum": ["a", "b"]}})
    assert breaking_changes(old, new, "backward") == []
    assert [str(b) for b in breaking_changes(old, new, "forward")] == ["$.k: enum value 'b' is no longer accepted"]
    assert [b.message for b in breaking_changes(old, new, "full")] == ["forward: enum value 'b' is no longer accepted"]
    with pytest.raises(ValueError):
        breaking_changes(old, new, "sideways")  # type: ignore[arg-type]


class _Node(BaseModel):
    name: str
    children: list[_Node] = Field(default_factory=list)


class _NarrowNode(BaseModel):
    name: str = Field(max_length=5)
    children: list[_NarrowNode] = Field(default_factory=list)


def test_recursive_schemas_terminate():
    assert backward_breaks(schema_of(_Node), schema_of(_Node)) == []
    breaks = backward_breaks(schema_of(_Node), schema_of(_NarrowNode))
    assert [str(b) for b in breaks] == ["$.name: maxLength lowered or added: length none -> <= 5"]


class _V1(EventData):
    customer_id: str
    kind: Literal["a", "b"]
    note: str | None = None
    amount: int = Field(ge=0, le=100)


class _V2Compatible(EventData):
    customer_id: str
    kind: Literal["a", "b", "c"]
    note: str | None = None
    amount: int = Field(ge=0, le=1000)
    channel: str | None = None
    items: list[str] = Field(default_factory=list)


class _V2Breaking(EventData):
    customer_id: str
    kind: Literal["a"]
    note: str
    amount: int = Field(gt=0, le=100)


def test_pydantic_model_changes():
    assert backward_breaks(schema_of(_V1), schema_of(_V2Compatible)) == []
    messages = sorted(str(b) for b in backward_breaks(schema_of(_V1), schema_of(_V2Breaking)))
    assert messages == ["$.amount: lower bound tightened: >= 0 -> >= 1",
                        "$.kind: enum value 'b' is no longer accepted",
                        "$.note: property 'note' is newly required",
                        "$.note: type narrowed: null is no longer accepted (the new schema allows ['string'])"]


def test_every_catalogue_schema_is_compatible_with_itself_both_ways(committed):
    for event_type, schema in committed.items():
        assert breaking_changes(schema, copy.deepcopy(schema), "full") == [], event_type


# --------------------------------------------------------------------------- schemas and models agree


def _rfc3339(value: object) -> bool:
    if not isinstance(value, str):
        return True
    if not re.fullmatch(r"\d{4}-\d\d-\d\d[Tt]\d\d:\d\d:\d\d(\.\d+)?([Zz]|[+-]\d\d:\d\d)", value):
        return False
    try:
        datetime.fromisoformat(value.upper().replace("Z", "+00:00"))
    except ValueError:
        return False
    return True


# jsonschema asserts date-time only with rfc3339-validator installed; this is RFC 3339 section 5.6.
FORMATS = FormatChecker()
FORMATS.checks("date-time")(_rfc3339)


def validator(schema: dict[str, Any]) -> Draft202012Validator:
    return Draft202012Validator(schema, format_checker=FORMATS)


def schema_accepts(event_type: str, data: Any) -> bool:
    return validator(committed_file(event_type)).is_valid(data)


def model_accepts(event_type: str, data: Any) -> bool:
    try:
        CATALOGUE[event_type].data_model.model_validate(data)
    except ValidationError:
        return False
    return True


def asyncapi_examples(doc: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    return {name: message["examples"] for name, message in doc["components"]["messages"].items()}


def test_the_asyncapi_examples_are_valid_under_the_schemas(asyncapi):
    examples = asyncapi_examples(asyncapi)
    assert set(examples) == set(CATALOGUE)
    for event_type, cases in examples.items():
        assert cases, event_type
        for example in cases:
            errors = [e.message for e in validator(committed_file(event_type)).iter_errors(example["payload"])]
            assert not errors, (event_type, example.get("name"), errors)
            assert model_accepts(event_type, example["payload"]), event_type
            assert example["headers"]["ce_dataschema"] == committed_file(event_type)["$id"]


def test_the_test_harness_events_are_valid_under_the_schemas():
    cid = "c-schema-1"
    built = [harness.order_paid(cid), harness.customer_registered(cid), harness.interaction(cid),
             harness.order_event("refunded", cid, "o-1", refund_amount="10.00",
                                 refunded_items=[{"sku": "SKU-1", "quantity": 1, "unit_price": "10.00"}]),
             *(harness.order_event(t, cid, "o-1") for t in ("placed", "completed", "cancelled"))]
    for event in built:
        errors = [e.message for e in validator(committed_file(event.type)).iter_errors(event.data)]
        assert not errors, (event.type, errors)
        assert event.dataschema == committed_file(event.type)["$id"]


def _example(doc: dict[str, Any], event_type: str) -> dict[str, Any]:
    return copy.deepcopy(asyncapi_examples(doc)[event_type][0]["payload"])


def _with(data: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    node = data
    *parents, last = path.split(".")
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node[part]
    node[last] = value
    return data


# (event type, the field to break as a dotted path, the broken value)
INVALID = [
    ("commerce.order.paid", "total_amount", 100.5),          # a float where a decimal string is expected
    ("commerce.order.paid", "total_amount", "1.12345"),      # five decimal places
    ("commerce.order.paid", "total_amount", "-1"),
    ("commerce.order.paid", "total_amount", "12345678901"),  # eleven integer digits
    ("commerce.order.paid", "total_amount", "1,50"),
    ("commerce.order.paid", "total_amount", "NaN"),
    ("commerce.order.paid", "currency", "cny"),
    ("commerce.order.paid", "items.0.quantity", 0),
    ("commerce.order.paid", "items.0.unit_price", 9.9),
    ("commerce.order.paid", "items.0.sku", ""),
    ("commerce.order.paid", "items", [{"sku": "s", "quantity": 1, "unit_price": "1"}] * 1001),
    ("commerce.order.paid", "occurred_at", "2026-11-01T12:00:00"),  # no timezone
    ("commerce.order.paid", "occurred_at", "yesterday"),
    ("commerce.order.refunded", "refund_amount", 10.0),
    ("commerce.customer.registered", "customer_id", ""),
    ("commerce.customer.registered", "customer_id", "c" * 101),
    ("commerce.customer.registered", "name", "n" * 201),
    ("commerce.customer.registered", "birthday", "1990-02-30"),
    ("commerce.customer.registered", "consents", "yes"),
    ("commerce.interaction.recorded", "kind", "teleport"),
    ("commerce.interaction.recorded", "attributes", ["sku"]),
    ("crm.churn.risk.changed", "score", 1.5),
    ("crm.churn.risk.changed", "new_level", "extreme"),
    ("crm.tickets.csat.submitted", "score", 6),
    ("crm.tickets.ticket.opened", "priority", "whenever"),
    ("crm.loyalty.points.earned", "points", 1.5),
    ("crm.loyalty.points.earned", "kind", "gift"),
    ("crm.profile.customer.updated", "total_spent", {"CNY": 12.5}),
]


@pytest.mark.parametrize(("event_type", "path", "value"), INVALID,
                         ids=[f"{t}:{p}={str(v)[:20]}" for t, p, v in INVALID])
def test_a_broken_event_is_refused_by_both_the_schema_and_the_model(asyncapi, event_type, path, value):
    data = _example(asyncapi, event_type)
    assert schema_accepts(event_type, data) and model_accepts(event_type, data)  # the example itself is fine
    broken = _with(data, path, value)
    assert not schema_accepts(event_type, broken), "the schema accepts it"
    assert not model_accepts(event_type, broken), "the model accepts it"


def test_a_missing_required_field_is_refused_by_both(asyncapi, committed):
    for event_type, schema in committed.items():
        data = _example(asyncapi, event_type)
        for name in schema["required"]:
            broken = {k: v for k, v in data.items() if k != name}
            assert not schema_accepts(event_type, broken), (event_type, name)
            assert not model_accepts(event_type, broken), (event_type, name)
        minimal = {k: v for k, v in data.items() if k in schema["required"]}
        assert schema_accepts(event_type, minimal) and model_accepts(event_type, minimal), event_type
        extra = {**data, "field_from_the_future": {"x": 1}}  # unknown fields are ignored by both
        assert schema_accepts(event_type, extra) and model_accepts(event_type, extra), event_type


@pytest.mark.parametrize("amount", [100, 100.5, "0", "0.5", "12.50", "99.9999", "9999999999.9999", "1234567890",
                                    "1.12345", "12345678901", "-1", "-0", "+1", "1e3", ".5", "1.", "1,5",
                                    " 1", "0x10", "Infinity", ""])
def test_every_amount_the_schema_accepts_the_model_accepts(amount):
    """The schema states the contract; the model may be more lenient (a JSON integer, "1e3", "-0"), never
    stricter."""
    data = {"order_id": "o-1", "customer_id": "c-1", "currency": "CNY", "total_amount": amount,
            "occurred_at": "2026-11-02T20:15:00+08:00"}
    if schema_accepts("commerce.order.placed", data):
        assert model_accepts("commerce.order.placed", data)
        assert isinstance(amount, str) and re.fullmatch(MONEY_PATTERN.strip("^$"), amount)


# --------------------------------------------------------------------------- docs/asyncapi.yaml


def _resolve(doc: dict[str, Any], node: Any) -> Any:
    while isinstance(node, dict) and "$ref" in node:
        assert node["$ref"].startswith("#/"), node["$ref"]
        target: Any = doc
        for part in node["$ref"][2:].split("/"):
            target = target[part.replace("~1", "/").replace("~0", "~")]
        node = target
    return node


def _object(doc: dict[str, Any], node: Any) -> dict[str, Any] | None:
    """The object schema in a node (through ``$ref``, a nullable ``anyOf``/``oneOf`` and ``items``)."""
    node = _resolve(doc, node)
    if not isinstance(node, dict):
        return None
    for combinator in ("anyOf", "oneOf"):
        if combinator in node:
            objects = [o for o in (_object(doc, b) for b in node[combinator]) if o is not None]
            return objects[0] if len(objects) == 1 else None
    if "items" in node:
        return _object(doc, node["items"])
    return node if "properties" in node else None


def test_the_asyncapi_payloads_match_the_schema_files(asyncapi, committed):
    checked = 0

    def compare(where: str, payload: dict[str, Any], schema: dict[str, Any], root: dict[str, Any]) -> None:
        nonlocal checked
        checked += 1
        assert set(payload.get("properties", {})) == set(schema.get("properties", {})), where
        assert sorted(payload.get("required", [])) == sorted(schema.get("required", [])), where
        for name, prop in schema.get("properties", {}).items():
            nested = _object(root, prop)
            if nested is not None:
                other = _object(asyncapi, payload["properties"][name])
                assert other is not None, f"{where}.{name}: an object in the schema file, not in asyncapi.yaml"
                compare(f"{where}.{name}", other, nested, root)

    for name, message in asyncapi["components"]["messages"].items():
        message = _resolve(asyncapi, message)
        payload = _object(asyncapi, message["payload"])
        assert payload is not None, name
        compare(name, payload, committed[message["name"]], committed[message["name"]])
    assert checked > len(CATALOGUE)  # the nested objects (items, consents, reasons) were compared too


def test_the_asyncapi_money_is_the_schema_money(asyncapi, committed):
    assert asyncapi["components"]["schemas"]["Money"]["pattern"] == MONEY_PATTERN
    assert committed["commerce.order.paid"]["properties"]["total_amount"]["pattern"] == MONEY_PATTERN
