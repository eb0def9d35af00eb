"""docs/guarantees.md and docs/security.md name the tests that prove each promise: every one they
name must exist, so the pages cannot go on citing a test that was renamed or removed."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]


def references_in(text: str) -> list[tuple[str, str | None]]:
    """(file, test or None) for every `tests/….py[::name]` and every `::name` that follows one (the
    last file named before it is its file)."""
    found, last_file = [], None
    for path, name, bare in re.findall(r"`(?:(tests/[\w/]+\.py)(?:::(\w+))?|::(\w+))`", text):
        if path:
            last_file = path
            found.append((path, name or None))
        elif last_file is not None:
            found.append((last_file, bare))
    return found


def test_a_bare_name_belongs_to_the_file_named_before_it():
    text = "`tests/a.py::one`, `::two`; `tests/b.py`, `::three` and `tests/c.py::four`"
    assert references_in(text) == [("tests/a.py", "one"), ("tests/a.py", "two"), ("tests/b.py", None),
                                   ("tests/b.py", "three"), ("tests/c.py", "four")]


@pytest.mark.parametrize("page", ["guarantees.md", "security.md"])
def test_every_test_the_page_names_exists(page):
    references = references_in((ROOT / "docs" / page).read_text())
    assert len(references) >= 20
    for path, name in references:
        file = ROOT / path
        assert file.is_file(), f"docs/{page} names {path}, which does not exist"
        if name:
            assert re.search(rf"^(async )?def {name}\(", file.read_text(), re.MULTILINE), f"{path} has no {name}"
