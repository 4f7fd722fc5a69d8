"""Write the README's demo numbers from a run's report: `python scripts/readme_numbers.py runs/demo/report`
(default README.md beside this script's folder; `--readme PATH` for another); the online block from a
configs/demo-online.yaml run with `--block online`. The numbers, the commit, the command and the CPU come from the
report's results.json and provenance.json (see jpo.runner.readme)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from jpo.errors import JpoError
from jpo.runner.readme import BLOCKS, update_readme


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("report", type=Path, help="a run's report folder (e.g. runs/demo/report)")
    parser.add_argument("--readme", type=Path, default=Path(__file__).resolve().parents[1] / "README.md")
    parser.add_argument("--block", choices=list(BLOCKS), default="demo",
                        help="which generated block to rewrite (online: from a configs/demo-online.yaml run)")
    args = parser.parse_args(argv)
    try:
        block = update_readme(args.readme, args.report, args.block)
    except JpoError as error:
        print(f"readme_numbers: {error}", file=sys.stderr)
        return 2
    print(block)
    return 0


if __name__ == "__main__":
    sys.exit(main())
