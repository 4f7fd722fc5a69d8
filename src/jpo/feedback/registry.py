"""`--judge SPEC` -> a Judge.

A spec is `NAME` or `NAME:ARGUMENT` (`openai:gpt-4o-mini`, `hf:/models/judge`, `rm:/models/rm`, `oracle`,
`verdicts:master.json`: the JPO authors' cached verdicts). Backends
are named by "module:Class" strings and imported only when chosen, so `jpo judge --judge oracle` never imports httpx
or torch. Judges that belong to another package are found through the `jpo.judges` entry-point group (the synthetic
task declares its `oracle` there in pyproject.toml), so this package never imports them and they work from the CLI
and from `make_judge` alike; `register_backend` adds one at run time.
"""

from __future__ import annotations

import importlib
import importlib.metadata

from jpo.errors import JpoError
from jpo.feedback.base import Judge, JudgeOptions

BACKENDS: dict[str, str] = {
    "openai": "jpo.feedback.openai_judge:OpenAIJudge",
    "hf": "jpo.feedback.lm_judge:LMJudge",
    "rm": "jpo.feedback.reward_judge:RewardModelJudge",
    "verdicts": "jpo.feedback.cached_judge:CachedVerdictsJudge",
}


def register_backend(name: str, target: str | type[Judge]) -> None:
    """Make `--judge NAME[:ARG]` build `target` (a Judge subclass or its "module:Class" path)."""
    if ":" in name:
        raise ValueError(f"backend name {name!r} must not contain ':'")
    BACKENDS[name] = target if isinstance(target, str) else f"{target.__module__}:{target.__qualname__}"


def parse_spec(spec: str) -> tuple[str, str | None]:
    name, _, argument = spec.partition(":")
    return name.strip(), (argument.strip() or None)


def _installed() -> dict[str, str]:
    return {entry.name: entry.value for entry in importlib.metadata.entry_points(group="jpo.judges")}


def backend_class(name: str) -> type[Judge]:
    known = {**_installed(), **BACKENDS}
    if name not in known:
        raise JpoError(f"unknown judge '{name}' (known: {', '.join(sorted(known))})")
    module_name, _, class_name = known[name].partition(":")
    module = importlib.import_module(module_name)
    return getattr(module, class_name)


def make_judge(spec: str, options: JudgeOptions | None = None) -> Judge:
    """Build the judge a `--judge` spec names; bad specs raise JpoError (one line, exit 2 from the CLI)."""
    name, argument = parse_spec(spec)
    return backend_class(name).from_spec(argument, options or JudgeOptions())
