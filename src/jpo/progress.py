"""The one progress bar every long `jpo` stage shows (judging, generating, scoring and selecting candidates,
bootstrapping a ranking).

tqdm on stderr, so stdout keeps only results. Shown when the caller enables it (every command's `--no_progress`
turns it off) *and* stderr is a terminal: tqdm's `disable=None` hides it in logs and pipes, where a bar is only
noise. Callers ask for it through `progress_bar`, so the rule is the same everywhere and a test can count what a
stage reports by replacing `tqdm` here.
"""

from __future__ import annotations

import sys
from typing import Any

from tqdm.auto import tqdm


def progress_bar(total: int | None = None, *, desc: str, unit: str = "it", enabled: bool = True,
                 **kwargs: Any) -> tqdm:
    """A tqdm bar of `total` `unit`s; `enabled=False` never shows it, `enabled=True` shows it on a terminal."""
    return tqdm(total=total, desc=desc, unit=unit, disable=None if enabled else True, file=sys.stderr,
                dynamic_ncols=True, **kwargs)
