"""Resumable units and their manifests: the one cache and resume rule of `jpo run` (and so of `jpo demo`).

A unit (a stage, or one model's and seed's share of train / generate / evaluate) writes `manifest.json` beside its
outputs when it finishes: a key hashing its configuration and the keys of the units it reads, the inputs, outputs,
versions, timings and the equivalent command. A rerun skips every unit whose manifest key still matches and whose
outputs exist; a crash leaves the crashed unit without a manifest, so the rerun resumes there. `--from STAGE`
reruns that stage and everything after it; `--force` reruns everything.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

STAGES = ("data", "model", "pretrain", "feedback", "sft", "select", "train", "generate", "evaluate", "report")


def digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode("utf-8")).hexdigest()[:16]


def versions() -> dict[str, str]:
    import importlib.metadata

    import jpo

    out = {"jpo": jpo.__version__, "python": platform.python_version()}
    for package in ("torch", "transformers", "datasets", "accelerate", "peft"):
        try:
            out[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            out[package] = "not installed"
    return out


@dataclass
class Unit:
    """One resumable piece of work. `run(unit)` does it and returns what the manifest records as its result."""

    stage: str
    name: str
    folder: Path
    config: dict[str, Any]
    deps: list[Unit]
    outputs: list[str]
    run: Callable[[Unit], dict[str, Any] | None]
    commands: list[str] = field(default_factory=list)

    @property
    def label(self) -> str:
        return self.stage if self.name == self.stage else f"{self.stage}/{self.name}"

    @property
    def key(self) -> str:
        return digest({"stage": self.stage, "name": self.name, "config": self.config,
                       "deps": [d.key for d in self.deps]})

    @property
    def manifest_path(self) -> Path:
        return self.folder / "manifest.json"

    def manifest(self) -> dict[str, Any]:
        return json.loads(self.manifest_path.read_text(encoding="utf-8"))

    def result(self) -> dict[str, Any]:
        return self.manifest().get("result", {})

    def finished(self) -> bool:
        try:
            manifest = self.manifest()
        except (OSError, ValueError):
            return False
        return manifest.get("key") == self.key and all((self.folder / o).exists() for o in self.outputs)


def write_manifest(unit: Unit, started: float, result: dict[str, Any] | None) -> None:
    manifest = {
        "stage": unit.stage, "name": unit.name, "key": unit.key, "config": unit.config,
        "inputs": {d.label: {"key": d.key, "folder": str(d.folder)} for d in unit.deps},
        "outputs": unit.outputs, "commands": unit.commands, "versions": versions(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started)),
        "seconds": round(time.time() - started, 2), "result": result or {},
    }
    tmp = unit.manifest_path.with_suffix(".tmp")
    tmp.write_text(json.dumps(manifest, indent=1, default=str) + "\n", encoding="utf-8")
    os.replace(tmp, unit.manifest_path)


def execute(units: list[Unit], start: str | None = None, force: bool = False,
            echo: Callable[[str], None] = print) -> list[tuple[str, str]]:
    """Run the units in order; returns (label, ran | skipped) per unit. A unit reruns when forced, when its stage
    is at or after `start`, when its manifest is missing or stale, or when a unit it reads ran again."""
    rerun_from = STAGES.index(start) if start else len(STAGES)
    done, ran = [], set()
    for unit in units:
        again = force or STAGES.index(unit.stage) >= rerun_from or any(d.label in ran for d in unit.deps)
        if not again and unit.finished():
            echo(f"jpo run: {unit.label}: finished earlier (manifest {unit.key}); skipped")
            done.append((unit.label, "skipped"))
            continue
        unit.folder.mkdir(parents=True, exist_ok=True)
        unit.manifest_path.unlink(missing_ok=True)
        unit.commands = []
        started = time.time()
        echo(f"jpo run: {unit.label}: running")
        result = unit.run(unit)
        write_manifest(unit, started, result)
        line = (result or {}).get("line")
        echo(f"jpo run: {unit.label}: done in {time.time() - started:.1f}s" + (f" ({line})" if line else ""))
        done.append((unit.label, "ran"))
        ran.add(unit.label)
    return done
