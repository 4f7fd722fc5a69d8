"""Config dataclasses as `argparse` flags, with `--config file.yaml` underneath them.

Every field becomes `--name` through `transformers.HfArgumentParser` (so TrainingArguments flags look exactly as in
TRL), given to the command's parser as a parent. Flag defaults are a sentinel, so the parsed namespace tells what
the user typed; the config is then built from the YAML file's values overridden by those flags, and the
dataclass supplies the rest.
"""

from __future__ import annotations

import argparse
import dataclasses

from jpo.config import check_keys, read_yaml, typed_config
from jpo.errors import JpoError

# The help of a `--no_X` flag where "Turn off --X." says less than it could.
NEGATED_HELP = {"disable_dropout": "Keep the model's dropout (TRL zeroes it by default).",
                "completion_only_loss": "Train on the prompt tokens too, not only on the response and EOS."}

UNSET = object()  # the parsed value of a flag that was not given (not a string: argparse would convert it)


def config_parser(cls: type) -> argparse.ArgumentParser:
    """A parent parser with every field of `cls` as a flag and `--config`; a flag not typed parses as `UNSET`, so
    the namespace tells what the user typed from what the dataclass defaults."""
    from transformers import HfArgumentParser

    parser = HfArgumentParser(cls, add_help=False)
    for action in parser._actions:  # HfArgumentParser gives `--no_X` the help text of `--X`, which says the opposite
        negated = [o for o in action.option_strings if o.startswith("--no_")]
        if negated and isinstance(action, argparse._StoreFalseAction):
            action.help = NEGATED_HELP.get(action.dest, f"Turn off --{action.dest}.")
    parser.set_defaults(**{f.name: UNSET for f in dataclasses.fields(cls) if f.init})
    parser.add_argument("--config", metavar="FILE.yaml", help="YAML file of options; flags given here override it")
    return parser


def build_config(args: argparse.Namespace, cls: type):
    """`cls` from the `--config` file's values (keys checked, each value typed against its field, as a recipe's
    are) overridden by the flags typed (argparse typed those); one-line JpoError on a bad key, type or value."""
    values = read_yaml(args.config, "config file") if getattr(args, "config", None) else {}
    names = {f.name for f in dataclasses.fields(cls) if f.init}
    check_keys(args.config, values, names)
    if isinstance(values.get("dataset"), str):
        values["dataset"] = [values["dataset"]]
    # TRL's list of loss types is also written as one (or comma-separated) text, as on the command line
    values = typed_config(args.config, values, cls, {"loss_type": str | list[str] | None}, sep=": ")
    values.update({k: v for k, v in vars(args).items() if k in names and v is not UNSET})
    try:
        return cls(**values)
    except (TypeError, ValueError) as error:
        raise JpoError(str(error).splitlines()[0]) from None
