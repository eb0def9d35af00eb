"""What the compatibility checker reports: the modes it checks in, and one reason per break."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Mode = Literal["backward", "forward", "full"]


@dataclass(frozen=True, slots=True)
class Break:
    """One reason the new schema may reject a document the old one accepted."""

    path: str      # where in the data: ``$.items[].unit_price``; ``.*`` is "any undeclared property"
    message: str
    kind: str = "constraint"  # "type", "constraint", "unknown" (cannot prove compatible)

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"
