"""python -m fuzz --cases N [--seed S] [--workers W] [--budget SECONDS] [--save DIR]
python -m fuzz --replay SEED:CASE   (runs one case in this process, showing the traceback)

Exit status 1 when any case raised or went over the time budget.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from fuzz.run import DEFAULT_BUDGET_SECONDS, case_input, run, save_failures, summary_lines
from fuzz.target import exercise, probe_index


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m fuzz", description=__doc__)
    parser.add_argument("--cases", type=int, default=10_000)
    parser.add_argument("--seed", default="svarstid")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--budget", type=float, default=DEFAULT_BUDGET_SECONDS)
    parser.add_argument("--save", type=Path, default=Path("test-output/fuzz"))
    parser.add_argument("--replay", metavar="SEED:CASE")
    return parser


def _replay(spec: str) -> int:
    seed, _, case = spec.rpartition(":")
    raw = case_input(seed, int(case))
    sys.stdout.write(f"case {spec}: {len(raw)} bytes\n")
    exercise(raw, probe_index())
    sys.stdout.write("no error\n")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.replay:
        return _replay(args.replay)
    report = run(args.cases, seed=args.seed, workers=args.workers, budget=args.budget)
    for line in summary_lines(report):
        sys.stdout.write(line + "\n")
    if report.failures:
        for path in save_failures(report, args.save):
            sys.stdout.write(f"saved {path}\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
