"""The one `jpo` command.

Each subcommand is a module of this package (`add_arguments(parser)` and `run(args)`): it parses typed options and
calls the library. No library module imports this package. This file only dispatches, and imports a subcommand's
module only when it runs, so `jpo --help` stays instant and does not import torch.
"""

from __future__ import annotations

import argparse
import difflib
import importlib
import os
import sys
import typing

from jpo import __version__
from jpo.errors import JpoError

# name -> (module, one-line help). The module provides add_arguments(parser) and run(args) -> int | None.
COMMANDS: dict[str, tuple[str, str]] = {
    "data": ("jpo.cli.data", "validate and inspect data files (jpo data validate FILE...)"),
    "pairs": ("jpo.cli.pairs", "build joint comparison items; `jpo pairs mix` builds D_M = D_C ∪ D_H"),
    "judge": ("jpo.cli.judge", "label comparison items with an AI judge (both orders, flip = tie)"),
    "sft": ("jpo.cli.sft", "supervised fine-tuning on instruction-response data"),
    "train": ("jpo.cli.train", "preference training: --objective jpo|dpo|kto|ipo|jipo"),
    "generate": ("jpo.cli.generate", "sample responses for prompts at several temperatures"),
    "evaluate": ("jpo.cli.evaluate", "win-rate of generations against gold references, with 95% intervals"),
    "annotate": ("jpo.cli.annotate", "human annotation server (serve, add-annotator, export)"),
    "analyze": ("jpo.cli.analyze", "agreement, interplay and position bias between label sources"),
    "demo": ("jpo.cli.demo", "`jpo run` on configs/demo.yaml: the paper's experiment in miniature, offline, CPU"),
    "run": ("jpo.cli.run", "run a recipe: data -> feedback -> sft -> train -> generate -> evaluate -> report"),
}


def _top_level_help() -> str:
    width = max(len(name) for name in COMMANDS)
    lines = [
        "usage: jpo [--version] COMMAND [ARGS...]",
        "",
        "Align language models with joint preferences over instruction-response pairs (JPO).",
        "",
        "commands:",
    ]
    lines += [f"  {name.ljust(width)}  {help_}" for name, (_, help_) in COMMANDS.items()]
    lines += ["", "Run `jpo COMMAND --help` for a command's options; every flag may be written with _ or - "
                  "(--output_dir = --output-dir)."]
    return "\n".join(lines)


class Parser(argparse.ArgumentParser):
    """argparse, taking each flag only as written in full (either spelling, `--output_dir` / `--output-dir`): an
    abbreviation (argparse's `allow_abbrev`) would let a misspelled flag (`--learning_rat 1`) silently set another.
    A flag it does not know is one line naming the nearest one. Sub-command parsers are made of the same class
    (argparse's `parser_class` default)."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def parse_args(self, args=None, namespace=None):  # argparse's signature
        namespace, extras = self.parse_known_args(args, namespace)
        if extras:
            self.error(_unrecognized(self, extras))
        return namespace

    def error(self, message: str) -> typing.NoReturn:
        """One line, `jpo CMD: error: ...` and where to read the options, not the whole usage block."""
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _flags(parser: argparse.ArgumentParser) -> set[str]:
    """Every long flag of `parser` and of its sub-commands."""
    flags = {option for option in parser._option_string_actions if option.startswith("--")}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                flags |= _flags(sub)
    return flags


def _unrecognized(parser: argparse.ArgumentParser, extras: list[str]) -> str:
    """argparse's message for arguments nobody took, with the nearest flag to the first unknown one."""
    message = f"unrecognized arguments: {' '.join(extras)}"
    unknown = next((e.split("=", 1)[0] for e in extras if e.startswith("--")), None)
    flags = sorted(_flags(parser))
    # an abbreviation (refused: `--learning_rat 1` once trained at lr 1) names the flags it begins, else the nearest
    begun = list(dict.fromkeys("--" + f[2:].replace("-", "_") for f in flags if unknown and f.startswith(unknown)))
    close = begun[:3] or (difflib.get_close_matches(unknown, flags, n=1, cutoff=0.6) if unknown else [])
    return f"{message} (did you mean {' or '.join(close)}?)" if close else message


def accept_both_spellings(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Give every long flag of `parser` (and of its sub-commands) its other spelling: `--output_dir` and
    `--output-dir` name the same option, as `HfArgumentParser` already does for `jpo train` / `jpo sft`.

    Done once here, after a command declared its flags, so no command has to remember it. argparse has no public
    way to add an alias to an existing action; its option table (`_option_string_actions`, shared by the parser and
    its argument groups) and `_actions` are stable since Python 3.2. A spelling that is already a flag is left alone.
    """
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in {id(p): p for p in action.choices.values()}.values():
                accept_both_spellings(sub)
            continue
        for option in list(action.option_strings):
            if not option.startswith("--"):
                continue
            for other in ("--" + option[2:].replace("_", "-"), "--" + option[2:].replace("-", "_")):
                if other not in parser._option_string_actions:
                    action.option_strings.append(other)
                    parser._option_string_actions[other] = action
    return parser


def build_parser(name: str) -> argparse.ArgumentParser:
    module_name, help_ = COMMANDS[name]
    module = importlib.import_module(module_name)
    # A module may bring ready-made parsers (e.g. dataclass fields through HfArgumentParser) as parents.
    parents = module.parent_parsers() if hasattr(module, "parent_parsers") else []
    parser = Parser(prog=f"jpo {name}", description=help_, parents=parents)
    module.add_arguments(parser)
    parser.set_defaults(_run=module.run)
    return accept_both_spellings(parser)


def main(argv: list[str] | None = None) -> int:
    # Before anything imports torch: libgomp's spinning threads make 2 torch threads slower than 1 on shared cores
    # and collapse throughput when processes share them (benchmarks/bench_threads.py). A user's setting wins.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(_top_level_help())
        return 0
    if argv[0] == "--version":
        print(f"jpo {__version__}")
        return 0
    name = argv[0]
    if name not in COMMANDS:
        print(f"jpo: unknown command '{name}'\n\n{_top_level_help()}", file=sys.stderr)
        return 2
    try:
        parser = build_parser(name)
        args = parser.parse_args(argv[1:])
        status = args._run(args)
    except JpoError as error:
        print(f"jpo {name}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"jpo {name}: interrupted", file=sys.stderr)
        return 130
    return int(status or 0)
