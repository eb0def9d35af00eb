"""docs/guarantees.md names the tests that prove each promise: every one it names must exist, so
the page cannot go on citing a test that was renamed or removed."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_every_test_the_guarantees_page_names_exists():
    text = (ROOT / "docs" / "guarantees.md").read_text()
    references = re.findall(r"`(tests/[\w/]+\.py)((?:::\w+)?)`", text)
    # "::name" right after a reference to a file, written `…::name` in the same cell, is that file's.
    followers = re.findall(r"`(tests/[\w/]+\.py)::\w+`, `::(\w+)`", text)
    assert len(references) >= 20
    for path, test in references + [(path, f"::{name}") for path, name in followers]:
        file = ROOT / path
        assert file.is_file(), f"docs/guarantees.md names {path}, which does not exist"
        if test:
            name = test.removeprefix("::")
            assert re.search(rf"^(async )?def {name}\(", file.read_text(), re.MULTILINE), f"{path} has no {name}"
