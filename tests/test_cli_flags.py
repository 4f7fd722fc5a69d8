"""Every long flag of every `jpo` subcommand parses in both spellings (`--output_dir` and `--output-dir`).

The parsers are introspected, not listed by hand, so a flag added later is covered too."""

from __future__ import annotations

import argparse
import dataclasses
import enum
import typing
from collections.abc import Iterator

import pytest

from jpo.cli import COMMANDS, build_parser, main

SKIP_ACTIONS = (argparse._HelpAction, argparse._VersionAction)


def leaf_parsers(parser: argparse.ArgumentParser, prefix: list[str]) -> Iterator[tuple[argparse.ArgumentParser,
                                                                                         list[str]]]:
    """(parser, argv that reaches it) for the parser and every sub-command parser below it."""
    subcommands = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subcommands:
        yield parser, prefix
    for action in subcommands:
        for name, sub in action.choices.items():
            yield from leaf_parsers(sub, prefix + [name])


def positionals(parser: argparse.ArgumentParser) -> list[str]:
    argv = []
    for action in parser._actions:
        if action.option_strings or isinstance(action, argparse._SubParsersAction):
            continue
        if action.nargs in (None, "+"):
            argv.append("x")
        elif isinstance(action.nargs, int):
            argv += ["x"] * action.nargs
    return argv


def values_for(action: argparse.Action) -> list[list[str]]:
    """Candidate values that the flag may accept, most likely first."""
    if action.nargs == 0:
        return [[]]
    count = action.nargs if isinstance(action.nargs, int) else 1
    if action.choices:
        return [[str(choice)] * count for choice in action.choices]
    if isinstance(action.type, type) and issubclass(action.type, enum.Enum):
        return [[str(member.value)] * count for member in action.type]
    return [[value] * count for value in ("7", "true", "false", "x", "{\"x\": 1}")]


def spellings(option: str) -> tuple[str, str]:
    body = option[2:]
    return "--" + body.replace("-", "_"), "--" + body.replace("_", "-")


@pytest.mark.parametrize("name", list(COMMANDS))
def test_every_long_flag_parses_in_both_spellings(name: str) -> None:
    parser = build_parser(name)
    for leaf, prefix in leaf_parsers(parser, []):
        for action in leaf._actions:
            action.required = False  # only the flag under test is given
        for action in leaf._actions:
            if isinstance(action, SKIP_ACTIONS):
                continue
            for option in (o for o in action.option_strings if o.startswith("--")):
                underscore, dash = spellings(option)
                assert {underscore, dash} <= set(action.option_strings), (name, prefix, option)
                if typing.get_origin(action.type) is dict or dataclasses.is_dataclass(action.type):
                    continue  # TrainingArguments' dict / config-object fields take no value from a flag at all
                for value in values_for(action):
                    head = prefix + positionals(leaf)
                    try:
                        first = parser.parse_args(head + [underscore, *value])
                    except SystemExit:
                        continue
                    if getattr(first, action.dest) == getattr(parser.parse_args(head), action.dest):
                        continue  # the value is the default: it would not show that the flag was read
                    second = parser.parse_args(head + [dash, *value])
                    assert getattr(first, action.dest) == getattr(second, action.dest), (name, option)
                    break
                else:
                    pytest.fail(f"jpo {name} {' '.join(prefix)} {option}: no test value parses")


def test_commands_agree_on_spellings_the_issue_named(capsys) -> None:
    """The examples of the report: each parses where it failed before."""
    cases = {
        "demo": ["--output_dir", "d"], "run": ["r.yaml", "--output_dir", "d"],
        "judge": ["--input", "i", "--output", "o", "--judge", "oracle", "--base-url", "http://x"],
        "generate": ["--model", "m", "--prompts", "p", "--output", "o", "--max-new-tokens", "3"],
        "pairs": ["--output", "o", "--pairs_per_instance", "2"],
    }
    for name, argv in cases.items():
        build_parser(name).parse_args(argv)
    build_parser("annotate").parse_args(["serve", "--items", "i", "--db", "d", "--per_item", "3"])


def test_an_unknown_flag_is_named_not_taken_for_a_verb(capsys) -> None:
    with pytest.raises(SystemExit):
        main(["pairs", "--output", "o", "--pairs_per_instanse", "2"])
    error = capsys.readouterr().err
    assert "unrecognized arguments: --pairs_per_instanse" in error and "invalid choice" not in error


@pytest.mark.parametrize("name", list(COMMANDS))
def test_no_command_takes_an_abbreviation(name: str) -> None:
    """A flag is taken only as written in full: a prefix of one (or a misspelling that is one, `--learning_rat`)
    would silently set it. Every command, its sub-commands and the TrainingArguments flags of train / sft."""
    parser = build_parser(name)
    for leaf, prefix in leaf_parsers(parser, []):
        assert not leaf.allow_abbrev, (name, prefix)
        for action in leaf._actions:
            action.required = False
        flags = [o for a in leaf._actions for o in a.option_strings if o.startswith("--") and len(o) > 6]
        for flag in flags:
            abbreviation = flag[:-2]
            if abbreviation in leaf._option_string_actions:
                continue  # itself a flag
            with pytest.raises(SystemExit):
                parser.parse_args(prefix + positionals(leaf) + [abbreviation, "1"])


@pytest.mark.parametrize(("argv", "expected"), [
    (["train", "--output_dir", "o", "--learning_rat", "1"], "(did you mean --learning_rate?)"),
    (["train", "--output-dir", "o", "--max_st", "1"], "(did you mean --max_steps?)"),
    (["run", "r.yaml", "--output", "d"], "(did you mean --output_dir?)"),
    (["generate", "--model", "m", "--prompts", "p", "--output", "o", "--temp", "0.5"], "(did you mean --temperatures?)"),
    (["annotate", "serve", "--items", "i", "--db", "d", "--per", "3"], "unrecognized arguments: --per 3"),
    (["judge", "--input", "i", "--output", "o", "--judge", "x", "--price", "1"], "unrecognized arguments: --price"),
])
def test_an_abbreviation_is_refused_in_one_line_naming_the_nearest_flag(argv, expected, capsys) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    error = capsys.readouterr().err
    assert exit_.value.code == 2 and expected in error and error.count("\n") == 1, error


def test_both_spellings_still_parse_in_full() -> None:
    assert build_parser("run").parse_args(["r.yaml", "--output_dir", "d"]).output_dir == "d"
    assert build_parser("run").parse_args(["r.yaml", "--output-dir", "d"]).output_dir == "d"
    assert build_parser("annotate").parse_args(["serve", "--items", "i", "--db", "d", "--per-item", "3"]).per_item == 3
    assert build_parser("train").parse_args(["--learning-rate", "0.5"]).learning_rate == 0.5


def test_negated_flags_have_their_own_help() -> None:
    """`--no_disable_dropout` does the opposite of `--disable_dropout`; its help says so."""
    for name in ("train", "sft"):
        actions = {a.dest + ("-" if a.option_strings[0].startswith("--no_") else ""): a
                   for a in build_parser(name)._actions if a.option_strings}
        negated = [key for key in actions if key.endswith("-")]
        assert negated
        for key in negated:
            assert actions[key].help != actions[key[:-1]].help, (name, key)
    help_ = {a.dest: a.help for a in build_parser("train")._actions if "--no_disable_dropout" in a.option_strings}
    assert help_ == {"disable_dropout": "Keep the model's dropout (TRL zeroes it by default)."}


def test_a_recipe_section_and_its_command_share_one_declaration() -> None:
    """`jpo judge` / `jpo generate` flags and a recipe's judge / generate sections are the same dataclass fields:
    the flags' defaults are the section's, and the `price_in` a recipe writes is the flag `--price_in`."""
    from jpo.cli.judge import judge_options
    from jpo.config import options_from
    from jpo.evaluate.generate import GenerateOptions
    from jpo.runner.recipe import GenerateSection, JudgeSection

    judge = build_parser("judge").parse_args(["--input", "i", "--output", "o", "--judge", "x", "--price_in", "2"])
    assert judge_options(judge) == JudgeSection(price_in=2.0).options()
    generate = build_parser("generate").parse_args(["--model", "m", "--prompts", "p", "--output", "o"])
    section = GenerateSection()
    assert options_from(generate, GenerateOptions) == GenerateOptions(
        **{f.name: getattr(section, f.name) for f in dataclasses.fields(GenerateOptions)})


def test_the_recorded_generate_command_gives_back_every_option() -> None:
    """The runner records `jpo generate` with `option_flags`: parsed again, it sets every option the section set
    (top_p, batch_size, device and dtype included), so the recorded command reproduces the generations."""
    from jpo.config import option_flags, options_from
    from jpo.evaluate.generate import GenerateOptions
    from jpo.runner.recipe import GenerateSection

    section = GenerateSection(temperatures=[0.7, 1e-3], max_new_tokens=64, batch_size=4, top_p=0.9, backend="hf",
                              device="cpu", dtype="bfloat16", alpaca_eval=True)
    argv = ["--model", "m", "--prompts", "p", "--output", "o", *option_flags(section, GenerateOptions)]
    parsed = options_from(build_parser("generate").parse_args(argv), GenerateOptions)
    assert parsed == GenerateOptions(**{f.name: getattr(section, f.name) for f in dataclasses.fields(GenerateOptions)})


@pytest.mark.parametrize(("argv", "expected"), [
    (["judge", "--input", "i", "--output", "o", "--judge", "x", "--concurrency", "many"],
     "argument --concurrency: expected an integer, got 'many'"),
    (["generate", "--model", "m", "--prompts", "p", "--output", "o", "--temperatures", "0.5,hot"],
     "argument --temperatures: expected a list of numbers"),
    (["generate", "--model", "m", "--prompts", "p", "--output", "o", "--backend", "tensorrt"],
     "argument --backend: invalid choice: 'tensorrt'"),
])
def test_an_option_value_is_typed_at_parse_time(argv, expected, capsys) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    error = capsys.readouterr().err
    assert exit_.value.code == 2 and expected in error, error
