"""Reading YAML settings files and rejecting keys we do not know, one way for every caller.

Recipes, `--config` files of `jpo train` / `jpo sft` and dicts handed to the Python API all go through here, so a
misspelled key fails the same way everywhere: one line naming the file, the key and the nearest valid key.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from jpo.errors import JpoError


def read_yaml(path: str | os.PathLike, what: str = "settings file") -> dict[str, Any]:
    """The mapping in a YAML file (an empty file is an empty mapping)."""
    import yaml

    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except OSError as error:
        raise JpoError(f"{path}: cannot read {what}: {error.strerror}") from None
    except yaml.YAMLError as error:
        raise JpoError(f"{path}: not valid YAML: {' '.join(str(error).split())}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise JpoError(f"{path}: a {what} must be a mapping of key: value, not {type(data).__name__}")
    return data


def check_keys(where: str, given: Iterable[str], valid: Iterable[str]) -> None:
    """Raise on the first key of `given` that is not in `valid`, naming the closest valid key when one is close.

    `where` locates the mapping, e.g. ``configs/tldr.yaml: train.runs[1]``."""
    valid = sorted(set(valid))
    for key in given:
        if key in valid:
            continue
        close = difflib.get_close_matches(str(key), valid, n=1, cutoff=0.6)
        hint = f"did you mean '{close[0]}'?" if close else f"valid: {', '.join(valid)}"
        raise JpoError(f"{where}: unknown key '{key}' ({hint})")
