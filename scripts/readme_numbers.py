"""Write the README's demo numbers from a run's report: `python scripts/readme_numbers.py runs/demo/report`
(default README.md beside this script's folder; `--readme PATH` for another). The numbers, the commit, the command
and the CPU come from the report's results.json and provenance.json (see jpo.runner.readme)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from jpo.errors import JpoError
from jpo.runner.readme import update_readme


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("report", type=Path, help="a run's report folder (e.g. runs/demo/report)")
    parser.add_argument("--readme", type=Path, default=Path(__file__).resolve().parents[1] / "README.md")
    args = parser.parse_args(argv)
    try:
        block = update_readme(args.readme, args.report)
    except JpoError as error:
        print(f"readme_numbers: {error}", file=sys.stderr)
        return 2
    print(block)
    return 0


if __name__ == "__main__":
    sys.exit(main())
