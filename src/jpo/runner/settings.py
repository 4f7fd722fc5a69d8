"""A recipe's training settings, from its YAML keys to the config dataclass the Trainer gets.

The path of one value, say `learning_rate: 1e-4` under `train.common`:

1. Parse time (`recipe.validate`): each settings mapping -- `sft.config` and `model.build.pretrain` (SFTConfig's
   fields), `train.common`, a run's `config` and a sweep's values (PreferenceConfig's) -- is typed against its
   config class (`typed_settings`: YAML 1.1's text `1e-4` becomes the number 0.0001), and every combination a
   stage will build is built once (`check_layers`), so that a value out of range fails naming the file and the key
   before any work starts.
2. `Recipe.runs()`: a sweep point is written into its run's `config` (run `dpo-lr0.0001`: `{learning_rate:
   0.0001}`).
3. The plan: a unit's key hashes these mappings as the recipe gives them, not the merged config, so that a run
   folder stays valid when a TrainingArguments default changes (and a key is the same on every machine).
4. The stage: `training` merges the layers in one documented order into a `Training`, whose `config()` is the
   `SFTConfig` / `PreferenceConfig` the Trainer gets and whose `settings` are what `config.yaml` and the model card
   record (the keys that were set, not every default).

This module imports nothing of the runner, so that the recipe, the stages and the online runs all read it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Literal

from jpo.config import check_keys, typed_config
from jpo.errors import JpoError

Settings = dict[str, Any]
"""Training settings: field names of SFTConfig / PreferenceConfig (TrainingArguments and ours) -> values, typed
against those fields at parse time (`typed_settings`)."""

# `jpo sft` (SFTConfig), `jpo train` (PreferenceConfig), or the online loop (OnlineJPOConfig, a recipe's `online:`)
Command = Literal["sft", "train", "online"]


def config_class(command: Command) -> type:
    """The config dataclass of a command (imported on use: transformers is slow to import)."""
    from jpo.online.config import OnlineJPOConfig
    from jpo.train.config import PreferenceConfig, SFTConfig

    return {"sft": SFTConfig, "train": PreferenceConfig, "online": OnlineJPOConfig}[command]


def typed_settings(where: str, values: Mapping[str, Any], command: Command) -> Settings:
    """`values` with every key checked and every value typed against the command's config class (numbers written as
    text made numbers); JpoError naming `where` and the key otherwise."""
    cls = config_class(command)
    check_keys(where, values, (f.name for f in fields(cls) if f.init))
    # PreferenceConfig (and OnlineJPOConfig, one) takes TRL's list of loss types too (one of them)
    return typed_config(where, dict(values), cls, {"loss_type": str | list[str] | None} if command != "sft" else None)


def check_layers(command: Command, layers: list[tuple[str, Mapping[str, Any]]]) -> None:
    """Build the config a stage will build from these layers (`(where, settings)`, later ones overriding), so that a
    value out of range fails at parse time, naming the file and the key, not at that stage after the judge was paid.
    Cheap (no model, no data); the output folder is a dummy, and the device is the CPU: whether bf16 / tf32 suit the
    GPU is for the machine that trains, not the one that reads the recipe."""
    settings = merged(layer for _, layer in layers)
    try:
        config_class(command)(**{**settings, "output_dir": "unused", "report_to": "none", "use_cpu": True,
                                 "tf32": None})
    except (JpoError, ValueError) as error:
        message = str(error).splitlines()[0]
        flag = re.search(r"--(\w+)", message)
        key = flag.group(1) if flag else None
        where = next((w for w, layer in reversed(layers) if key in layer), None)
        if where is None:  # a check of several keys, or of a default: the sections that were combined
            raise JpoError(f"{' + '.join(w for w, _ in layers)}: {message}") from None
        raise JpoError(f"{where}.{key}: {message.replace(f'--{key} ', '', 1)}") from None


def merged(layers: Iterable[Mapping[str, Any]]) -> Settings:
    """The layers, each over the ones before it (a key keeps the place where it was first set)."""
    return {key: value for layer in layers for key, value in layer.items()}


def run_layers(common: Mapping[str, Any], config: Mapping[str, Any], objective: str) -> list[Mapping[str, Any]]:
    """A preference run's own layers: `train.common`, then the run's `config` (a sweep point already in it), then its
    `objective`."""
    return [common, config, {"objective": objective}]


def ref_cache(run_dir: Path) -> Path:
    """The run folder's cache of reference log-probs, shared by its runs (a cache entry is keyed by model, data and
    tokenization)."""
    return run_dir / "cache" / "ref_logps"


def online_layers(common: Mapping[str, Any], config: Mapping[str, Any], loop: Mapping[str, Any],
                  prompt_template: str | None) -> list[Mapping[str, Any]]:
    """An online run's layers: `train.common`, then the run's `config`, then the loop's own settings (`OnlineRun`'s
    fields as OnlineJPOConfig keys), then the recipe's prompt template."""
    return [common, config, loop, {"prompt_template": prompt_template}]


def seeded(settings: Mapping[str, Any], seed: int) -> Settings:
    """Training settings at a seed (model init, data order), logging nowhere unless the settings say so."""
    return {"seed": seed, "data_seed": seed, "report_to": "none", **settings}


@dataclass(frozen=True)
class Training:
    """One training a stage runs: the command (`jpo sft`, `jpo train` or the online loop) and its settings, every key a field of
    that command's config class. `settings` is what `config.yaml` and the model card record; `config()` is what
    the Trainer gets."""

    command: Command
    settings: Settings

    @property
    def output_dir(self) -> Path:
        return Path(self.settings["output_dir"])

    def config(self) -> Any:
        """The `SFTConfig` / `PreferenceConfig` of these settings (JpoError on a bad value, as at parse time)."""
        return config_class(self.command)(**self.settings)


def training(command: Command, layers: Iterable[Mapping[str, Any]], *, seed: int, model: str,
             data_file: Path | None, output_dir: Path, ref_cache_dir: Path) -> Training:
    """The one place a stage's training settings are put together, each step over the one before:

    1. the seed's defaults (`seeded`): seed, data_seed, report_to none;
    2. `layers`, in order: for SFT `sft.config`; for a preference run `run_layers` (train.common, the run's
       config, its objective) and then what the stage decides (max_steps taken from another run, a reordering's
       data_seed); for an online run `online_layers`;
    3. the paths the stage chose: the model it starts from, its data file (none for an online run, which samples
       its own), its output folder, and, when reference log-probs are precomputed and the settings name no cache,
       the run folder's cache (`ref_cache_dir`).
    """
    settings = {**seeded(merged(layers), seed), "model_name_or_path": model,
                **({} if data_file is None else {"dataset": [str(data_file)]}), "output_dir": str(output_dir)}
    if settings.get("precompute_ref_log_probs") and not settings.get("ref_cache_dir"):
        settings["ref_cache_dir"] = str(ref_cache_dir)
    return Training(command, settings)
