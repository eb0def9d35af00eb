"""JSON Schemas (draft 2020-12) of every event's ``data``, generated from the catalogue's pydantic models.

One file per event type, ``docs/events/schemas/<type>.json``, committed. ``$id`` is the ``dataschema``
URI the CRM puts on the event (``https://crm.example/schemas/<type>/v1.json``), ``title`` the event
type; nested models are in the document's own ``$defs``, so each file stands alone.

    python -m crm_shared.events.schemas --write   # regenerate the files
    python -m crm_shared.events.schemas --check   # exit 1 if the files differ from the catalogue

The files are a published contract: a change must stay backward compatible with every earlier
committed version (``crm_shared.events.compat``, enforced by ``tests/unit/shared/test_event_schemas.py``).
See ``docs/events.md``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaValue
from pydantic_core import core_schema

from crm_shared.events import fields
from crm_shared.events.catalogue import CATALOGUE

JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
# The AsyncAPI document's ``Money``: what ``fields.Amount`` accepts as a string (at most 10 integer
# digits, at most 4 decimal places, not negative). The model is a little more lenient ("1e3", "-0",
# a JSON integer); the schema states the contract publishers are asked to follow.
MONEY_PATTERN = r"^\d{1,10}(\.\d{1,4})?$"
MONEY_SCHEMA: dict[str, Any] = {
    "type": "string",
    "pattern": MONEY_PATTERN,
    "description": "A non-negative decimal amount as a string (at most 10 integer digits and 4 decimal "
                   "places), never a JSON number. Always paired with a currency code.",
}

# shared/src/crm_shared/events/schemas.py -> the project root (in a checkout; see default_directory).
_PROJECT_ROOT = Path(__file__).resolve().parents[4]
SCHEMA_DIR = Path("docs") / "events" / "schemas"


class _EventSchemaGenerator(GenerateJsonSchema):
    """pydantic's generator, except for money.

    ``fields.Amount`` is a ``Decimal`` whose before-validator refuses floats; pydantic would describe
    it as ``anyOf: [number, string]`` and so let a float through the schema that the model rejects.
    """

    def function_after_schema(self, schema: core_schema.AfterValidatorFunctionSchema) -> JsonSchemaValue:
        if schema["function"].get("function") is fields.money_range:
            return dict(MONEY_SCHEMA)
        return super().function_after_schema(schema)


def schema_of(model: type[BaseModel]) -> dict[str, Any]:
    """A model's validation schema as the event schemas are built (money as a decimal string)."""
    return model.model_json_schema(mode="validation", schema_generator=_EventSchemaGenerator)


def event_schema(event_type: str) -> dict[str, Any]:
    """The JSON Schema of one event type's data."""
    entry = CATALOGUE[event_type]
    schema: dict[str, Any] = {"$schema": JSON_SCHEMA_DIALECT, "$id": entry.dataschema, **schema_of(entry.data_model)}
    schema["title"] = event_type
    return schema


def event_schemas() -> dict[str, dict[str, Any]]:
    """Every catalogue type → the JSON Schema of its data."""
    return {event_type: event_schema(event_type) for event_type in sorted(CATALOGUE)}


def render(schema: dict[str, Any]) -> str:
    """The file text: sorted keys, indent 2, a trailing newline (byte-stable across runs)."""
    return json.dumps(schema, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def file_name(event_type: str) -> str:
    return f"{event_type}.json"


def default_directory() -> Path:
    """``docs/events/schemas`` of this checkout, or of the current directory for an installed package."""
    if (_PROJECT_ROOT / "shared" / "pyproject.toml").is_file():
        return _PROJECT_ROOT / SCHEMA_DIR
    return Path.cwd() / SCHEMA_DIR


def write_schemas(directory: Path | str | None = None) -> list[Path]:
    """Write every schema file and delete files of types no longer in the catalogue. Returns what changed."""
    directory = Path(directory) if directory is not None else default_directory()
    directory.mkdir(parents=True, exist_ok=True)
    changed: list[Path] = []
    expected = {file_name(t): render(s) for t, s in event_schemas().items()}
    for name, text in expected.items():
        path = directory / name
        if not path.is_file() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")
            changed.append(path)
    for path in sorted(directory.glob("*.json")):
        if path.name not in expected:
            path.unlink()
            changed.append(path)
    return changed


def check_schemas(directory: Path | str | None = None) -> list[str]:
    """The differences between the files and the catalogue, one line each; empty when they agree.

    A changed file's line also says whether the change is backward compatible (it must be, see
    ``docs/events.md``), so a ``--write`` that CI will refuse is visible before it is committed.
    """
    from crm_shared.events.compat import backward_breaks

    directory = Path(directory) if directory is not None else default_directory()
    problems: list[str] = []
    expected = event_schemas()
    for event_type, schema in expected.items():
        path = directory / file_name(event_type)
        if not path.is_file():
            problems.append(f"{path}: missing (new event type {event_type})")
            continue
        text = path.read_text(encoding="utf-8")
        if text == render(schema):
            continue
        try:
            breaks = backward_breaks(json.loads(text), schema)
        except ValueError as exc:
            problems.append(f"{path}: differs from the catalogue and is not valid JSON ({exc})")
            continue
        if breaks:
            problems.append(f"{path}: differs from the catalogue; the change is NOT backward compatible: "
                            + "; ".join(str(b) for b in breaks))
        else:
            problems.append(f"{path}: differs from the catalogue (backward compatible)")
    names = {file_name(t) for t in expected}
    if directory.is_dir():
        for path in sorted(directory.glob("*.json")):
            if path.name not in names:
                problems.append(f"{path}: no such event type in the catalogue (stale file)")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m crm_shared.events.schemas", description=__doc__.split("\n")[0])
    action = parser.add_mutually_exclusive_group(required=True)
    action.add_argument("--write", action="store_true", help="regenerate the schema files from the catalogue")
    action.add_argument("--check", action="store_true", help="exit 1 if the files differ from the catalogue")
    parser.add_argument("--dir", type=Path, default=None,
                        help=f"the schema directory (default: {SCHEMA_DIR} of this checkout)")
    args = parser.parse_args(argv)
    directory = args.dir or default_directory()
    if args.write:
        changed = write_schemas(directory)
        for path in changed:
            print(f"wrote {path}" if path.exists() else f"removed {path}")
        print(f"{len(CATALOGUE)} event schemas in {directory}, {len(changed)} changed")
        return 0
    problems = check_schemas(directory)
    for line in problems:
        print(line, file=sys.stderr)
    if problems:
        print("run `python -m crm_shared.events.schemas --write` and commit the files", file=sys.stderr)
        return 1
    print(f"{len(CATALOGUE)} event schemas in {directory} match the catalogue")
    return 0


if __name__ == "__main__":
    sys.exit(main())
