"""Online JPO: preference training on the policy's own samples, judged while it trains (see `jpo.online.loop`).

`train_online(OnlineJPOConfig(...), prompts, judge)` is the loop; `OnlineJPOTrainer` the same with TRL
OnlineDPOTrainer's constructor. The package sits above `jpo.train`, `jpo.feedback`, `jpo.selection` and
`jpo.evaluate` (it imports them, never the runner or the CLI). Imports are lazy so `import jpo.online` is cheap.
"""

from __future__ import annotations

from jpo.lazy import lazy_attributes

__all__ = ["OnlineJPOConfig", "OnlineJPOTrainer", "OnlineResult", "train_online"]

_WHERE = {"OnlineJPOConfig": "jpo.online.config", "OnlineJPOTrainer": "jpo.online.loop",
          "OnlineResult": "jpo.online.loop", "train_online": "jpo.online.loop"}


__getattr__ = lazy_attributes(_WHERE)
