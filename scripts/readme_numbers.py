"""Write the README's generated blocks from a run's output, never typed:

    python scripts/readme_numbers.py runs/demo/report                        # the demo's numbers
    python scripts/readme_numbers.py runs/demo-online/report --block online  # the online JPO curves
    python scripts/readme_numbers.py /tmp/trl-dpo-tests --block trl          # TRL's DPOTrainer tests on JPOTrainer

(default README.md beside this script's folder; `--readme PATH` for another). The demo and online numbers, the
commit, the command and the CPU come from the report's results.json and provenance.json (see jpo.runner.readme);
the TRL block from the junit files that `../shared/peer-tests/trl-dpo/run.sh trl` and `run.sh jpo` write under
their OUT folder (results/trl.xml, results/jpo.xml), with the run's time from those files and the checkout's commit.
"""

from __future__ import annotations

import argparse
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

from jpo.errors import JpoError
from jpo.runner.readme import BLOCKS, markers, update_readme, write_block
from jpo.runner.report.results import checkout_commit

ROOT = Path(__file__).resolve().parents[1]


def junit_outcomes(path: Path) -> tuple[dict[str, str], str]:
    """Each test's outcome (passed, failed, error, skipped) in a junit file, and the run's timestamp."""
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError) as error:
        raise JpoError(f"{path}: cannot read the test run's junit file: {error}") from None
    outcomes = {}
    for case in root.iter("testcase"):
        status = next((child.tag for child in case if child.tag in ("failure", "error", "skipped")), "passed")
        outcomes[f"{case.get('classname', '').split('.')[-1]}::{case.get('name')}"] = {"failure": "failed"}.get(
            status, status)
    suite = root if root.tag == "testsuite" else root.find("testsuite")
    return outcomes, (suite.get("timestamp", "an unknown time") if suite is not None else "an unknown time")


def render_trl(out: Path) -> str:
    """How many of the TRL DPOTrainer tests that pass on TRL pass on JPOTrainer, and which do not."""
    trl, _ = junit_outcomes(out / "results" / "trl.xml")
    jpo, when = junit_outcomes(out / "results" / "jpo.xml")
    baseline = [name for name, status in trl.items() if status == "passed"]
    passing = [name for name in baseline if jpo.get(name) == "passed"]
    left = [name.split("::")[-1] for name in baseline if jpo.get(name) != "passed"]
    commit = checkout_commit() or "unknown"
    return (f"TRL's own DPOTrainer test file passes on JPOTrainer: **{len(passing)} of the {len(baseline)} tests "
            f"that pass on TRL's DPOTrainer** ({len(trl)} collected; `../shared/peer-tests/trl-dpo/run.sh trl` and "
            f"`run.sh jpo`, jpo run at {when}, written at commit `{commit}` by `scripts/readme_numbers.py`). "
            + (f"Not passing: {', '.join(f'`{name}`' for name in left)}." if left else "All of them pass."))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("report", type=Path, help="a run's report folder (e.g. runs/demo/report); with --block trl "
                                                   "the OUT folder of the TRL test runs")
    parser.add_argument("--readme", type=Path, default=ROOT / "README.md")
    parser.add_argument("--block", choices=[*BLOCKS, "trl"], default="demo",
                        help="which generated block to rewrite (online: from a configs/demo-online.yaml run)")
    args = parser.parse_args(argv)
    try:
        if args.block == "trl":
            block = render_trl(args.report)
            write_block(args.readme, markers("trl-suite"), block)
        else:
            block = update_readme(args.readme, args.report, args.block)
    except JpoError as error:
        print(f"readme_numbers: {error}", file=sys.stderr)
        return 2
    print(block)
    return 0


if __name__ == "__main__":
    sys.exit(main())
