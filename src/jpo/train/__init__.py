"""Training: SFT and preference objectives (JPO, DPO, IPO, joint IPO, KTO) on `transformers.Trainer`.

Python API: `JPOTrainer(model, args=JPOConfig(...), train_dataset=...)` as TRL's DPOTrainer; and
`train_preferences(config, dataset_rows=None)` / `train_sft(config, dataset_rows=None)`, with `JPOConfig` (also named
`PreferenceConfig`) / `SFTConfig` or plain dicts of their fields. Imports are lazy so `import jpo.train` is cheap.
"""

from __future__ import annotations

from typing import Any

__all__ = ["OBJECTIVES", "JPOConfig", "JPOTrainer", "PreferenceConfig", "SFTConfig", "TrainResult",
           "train_preferences", "train_sft"]

_WHERE = {"OBJECTIVES": "jpo.train.losses", "JPOConfig": "jpo.train.config", "JPOTrainer": "jpo.train.trainer",
          "PreferenceConfig": "jpo.train.config", "SFTConfig": "jpo.train.config", "TrainResult": "jpo.train.api",
          "train_preferences": "jpo.train.api", "train_sft": "jpo.train.api"}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        import importlib

        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(name)
