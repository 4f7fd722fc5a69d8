"""Module attributes imported on first use (PEP 562), so that importing a package stays free of torch."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any


def lazy_attributes(where: dict[str, str]) -> Callable[[str], Any]:
    """A module `__getattr__` that imports `where[name]` (a module path) when `name` is first asked for; any other
    name is an AttributeError, as for a plain module."""

    def __getattr__(name: str) -> Any:
        if name in where:
            return getattr(importlib.import_module(where[name]), name)
        raise AttributeError(name)

    return __getattr__
