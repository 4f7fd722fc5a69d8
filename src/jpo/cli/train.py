"""`jpo train`: preference training (--objective jpo|dpo|ipo|jipo|kto) on one or more preference files."""

from __future__ import annotations

import argparse

from jpo.config import build_config, config_parser


def parent_parsers() -> list[argparse.ArgumentParser]:
    from jpo.train.config import JPOConfig

    return [config_parser(JPOConfig)]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Every option comes from `parent_parsers`."""


def run(args: argparse.Namespace) -> int:
    from jpo.train.api import train_preferences
    from jpo.train.config import JPOConfig

    config = build_config(args, JPOConfig)
    result = train_preferences(config, resume_from_checkpoint=config.resume_from_checkpoint)
    print(f"jpo train ({result.extra['objective']}): {result.summary()}")
    return 0
