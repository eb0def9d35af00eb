"""What every loyalty request and response model shares."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, StringConstraints

Text = Annotated[str, StringConstraints(min_length=1, max_length=200, strip_whitespace=True)]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")
