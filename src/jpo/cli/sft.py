"""`jpo sft`: supervised fine-tuning on instruction-response files (loss on the response tokens by default)."""

from __future__ import annotations

import argparse

from jpo.config import build_config, config_parser


def parent_parsers() -> list[argparse.ArgumentParser]:
    from jpo.train.config import SFTConfig

    return [config_parser(SFTConfig)]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Every option comes from `parent_parsers`."""


def run(args: argparse.Namespace) -> int:
    from jpo.train.api import train_sft
    from jpo.train.config import SFTConfig

    config = build_config(args, SFTConfig)
    result = train_sft(config, resume_from_checkpoint=config.resume_from_checkpoint)
    print(f"jpo sft: {result.summary()}")
    return 0
