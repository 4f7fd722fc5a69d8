"""jpo: aligning language models with joint preferences over instruction-response pairs.

`from jpo import JPOConfig, JPOTrainer` gives the trainer with TRL DPOTrainer's constructor, and `OnlineJPOConfig`,
`OnlineJPOTrainer` the online loop with TRL OnlineDPOTrainer's; all load lazily, so `import jpo` (and `jpo --help`)
stays free of torch.
"""

from __future__ import annotations

from jpo.lazy import lazy_attributes

__version__ = "0.1.0"
__all__ = ["JPOConfig", "JPOTrainer", "OnlineJPOConfig", "OnlineJPOTrainer", "__version__"]

_WHERE = {"JPOConfig": "jpo.train.config", "JPOTrainer": "jpo.train.trainer",
          "OnlineJPOConfig": "jpo.online.config", "OnlineJPOTrainer": "jpo.online.loop"}


__getattr__ = lazy_attributes(_WHERE)
