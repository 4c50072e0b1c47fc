"""A plan: the files wgns writes, {absolute path: File | Link}, made by
render (pure) and written by the admin side's one writer."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Union


@dataclass(frozen=True)
class File:
    text: str
    mode: int


@dataclass(frozen=True)
class Link:
    target: str


Plan = Dict[str, Union[File, Link]]
