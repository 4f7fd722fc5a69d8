"""`jpo evaluate`: win-rate of generations against gold references, per temperature, with 95% intervals;
`--protocol joint`: several systems ranked by joint comparisons (Bradley-Terry), beside their win-rates vs gold."""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

from jpo.cli.judge import add_judge_arguments, judge_options
from jpo.errors import JpoError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--generations", required=True, nargs="+", metavar="[NAME=]PATH",
                        help="generations {id, prompt, response, temperature, seed}; --protocol joint: one file per "
                             "system, named NAME= or by the file's stem")
    parser.add_argument("--references",
                        help="gold references: {id, reference}, or prompts with a gold response (same ids); "
                             "optional with --protocol joint (adds the win-rates vs gold and the rank agreement)")
    parser.add_argument("--output", help="folder for the results (default: beside the (first) generations, "
                        "<name>_eval)")
    parser.add_argument("--n_resamples", type=int, help="bootstrap resamples (default 10000; 1000 per BT fit with "
                        "--protocol joint)")
    joint = parser.add_argument_group("joint ranking (--protocol joint)")
    joint.add_argument("--protocol", choices=("gold", "joint"), default="gold",
                       help="gold: each generation against its reference (the paper); joint: systems against each "
                            "other on different instructions, ranked by Bradley-Terry")
    joint.add_argument("--max_per_pair", type=int, help="joint items per pair of systems (default: all, 2 per prompt)")
    joint.add_argument("--seed", type=int, default=0, help="partner instructions and bootstrap")
    joint.add_argument("--export_items", metavar="PATH", help="write the joint items for `jpo annotate serve --items` "
                       "and stop")
    joint.add_argument("--labels", metavar="PATH", help="judged joint items (`jpo annotate export --format items`, or "
                       "`jpo judge` output), joined by id, instead of asking --judge")
    add_judge_arguments(parser, required=False)


def run_joint(args: argparse.Namespace, out: Path) -> int:
    from jpo.data import load_items, write_jsonl
    from jpo.evaluate.against_gold import load_gold
    from jpo.evaluate.ranking import aevaluate_joint, joint_items, load_systems
    from jpo.feedback.registry import make_judge
    from jpo.feedback.store import VerdictStore

    systems = load_systems(args.generations)
    references = load_gold(args.references) if args.references else None
    if args.export_items:
        prompts = {str(r["id"]): r["prompt"] for r in references or () if "prompt" in r}
        items, left_out = joint_items(systems, seed=args.seed, prompts=prompts, max_per_pair=args.max_per_pair)
        write_jsonl(args.export_items, items)
        left = ", ".join(f"{n} {why}" for why, n in left_out.items() if n) or "nothing"
        print(f"jpo evaluate: wrote {len(items)} joint items of {len(systems)} systems to {args.export_items} "
              f"(left out: {left})")
        return 0
    judge = make_judge(args.judge, judge_options(args))
    labels = load_items(args.labels) if args.labels else None
    with VerdictStore(Path(args.cache) if args.cache else out / "verdicts.sqlite") as store:
        result = asyncio.run(aevaluate_joint(systems, judge, references=references, labels=labels, store=store,
                                             progress=not args.no_progress, n_resamples=args.n_resamples or 1000,
                                             seed=args.seed, max_per_pair=args.max_per_pair))
    written = result.write(out)
    print(result.markdown())
    if result.judge_cost:
        print(f"jpo evaluate: judge cost: {result.judge_cost}")
    print(f"jpo evaluate: wrote {', '.join(map(str, written))}")
    return 0


def run(args: argparse.Namespace) -> int:
    from jpo.data import load_generations
    from jpo.evaluate.against_gold import aevaluate, load_gold
    from jpo.feedback.registry import make_judge
    from jpo.feedback.store import VerdictStore

    if not args.judge and not (args.protocol == "joint" and args.export_items):
        raise JpoError("--judge SPEC is required (only --protocol joint --export_items asks no judge)")
    first = args.generations[0].partition("=")[2] or args.generations[0]
    out = Path(args.output) if args.output else Path(first).with_name(Path(first).name.split(".")[0] + "_eval")
    if args.protocol == "joint":
        return run_joint(args, out)
    if len(args.generations) != 1 or not args.references:
        raise JpoError("--protocol gold takes one --generations file and --references")
    generations = load_generations(args.generations[0])
    references = load_gold(args.references)
    judge = make_judge(args.judge, judge_options(args))
    with VerdictStore(Path(args.cache) if args.cache else out / "verdicts.sqlite") as store:
        result = asyncio.run(aevaluate(generations, references, judge, store=store, progress=not args.no_progress,
                                       n_resamples=args.n_resamples or 10_000,
                                       generations_path=args.generations[0]))
    result.judge_run.require_valid("generations")
    written = result.write(out)
    print(result.markdown())
    by_text = sum(1 for row in result.rows if row.get("matched_by") == "prompt text")
    if by_text:
        print(f"jpo evaluate: {by_text} of {len(result.rows)} generations matched to their reference by prompt text "
              "(no reference has their id)")
    print(f"jpo evaluate: {result.judge_run.summary()}")
    print(f"jpo evaluate: wrote {', '.join(map(str, written))}")
    return 0
