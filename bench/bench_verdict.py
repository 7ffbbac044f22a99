"""The `no_regression` verdict's false-PASS and power table, by simulation (issue 18).

    .venv/bin/python bench/bench_verdict.py                          # 400 runs per cell, n = 10 .. 1000
    .venv/bin/python bench/bench_verdict.py --runs 200 --sizes 10,30,100
    .venv/bin/python bench/bench_verdict.py --evaluator /tmp/old     # the same table for another checkout's code

Each cell draws `--runs` paired runs of n cases from a scenario (the candidate equal to the reference except on
some cases, as in a real comparison), sends each through the gate's own path (`evaluator.compare.difference` ->
`evaluator.gate.classify`, tolerance 0.03, the suite's default 95 % interval) and prints how often the verdict was
PASS, INCONCLUSIVE and FAIL. For a regression beyond the tolerance PASS is a false PASS: a 95 % two-sided interval
promises at most 2.5 %, and `max` is the most false PASSes a 2.5 % rate explains at that many runs (a one-sided
binomial test at the 0.1 % level; `!` marks a cell beyond it). For no regression PASS is the power. The scenarios
are those of the coverage test (tests/compare/test_verdict_coverage.py) plus more power rows.

`--evaluator PATH` imports `evaluator` from another checkout (e.g. `git worktree add /tmp/old main`), so the same
scenarios measure the code before a change; its percentile bootstrap costs about 2000 x n operations per run.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=400, help="simulated runs per cell [400]")
    parser.add_argument("--sizes", default="10,20,30,100,300,1000", help="cases per run, comma-separated")
    parser.add_argument("--evaluator", type=Path, default=None, help="a checkout whose evaluator/ to measure")
    parser.add_argument("--only", default="", help="only scenarios whose name contains this")
    args = parser.parse_args()
    if args.evaluator is not None:
        sys.path.insert(0, str(args.evaluator.resolve()))
    sys.path.insert(1 if args.evaluator is not None else 0, str(ROOT))

    from scipy import stats as sp

    import evaluator
    from tests.compare.test_verdict_coverage import POWER, REGRESSIONS, TOLERANCE, binary, continuous, rates
    from tests.compare.test_verdict_coverage import true_difference as delta_of

    power = {
        **POWER,
        "binary: 5% of passes fail, 20% of fails pass (0.00)": binary(0.05, 0.2),
        "binary: fixes 30% of fails (+0.06)": binary(0.0, 0.3),
        "continuous: identical scores": continuous(0.0, 0.0),
        "continuous: judge jitter 0.05 on every case (0.00)": continuous(0.0, 0.0, jitter=0.05),
    }
    sizes = [int(s) for s in args.sizes.split(",")]
    allowed = int(sp.binom.ppf(0.999, args.runs, 0.025))
    print(f"evaluator from {Path(evaluator.__file__).parent}; tolerance {TOLERANCE}; {args.runs} runs per cell")
    print(f"load average {os.getloadavg()[0]:.1f}; false PASS beyond {allowed}/{args.runs} marked !")
    for title, scenarios in (("false PASS (a regression beyond the tolerance)", REGRESSIONS),
                             ("power (no regression: PASS wanted)", power)):  # fmt: skip
        print(f"\n{title}")
        header = f"{'scenario':<52} {'true Δ':>7} " + " ".join(f"{'n=' + str(n):>17}" for n in sizes)
        print(header)
        print(f"{'':<52} {'':>7} " + " ".join(f"{'PASS/INC/FAIL %':>17}" for _ in sizes))
        for name, draw in scenarios.items():
            if args.only not in name:
                continue
            started = time.perf_counter()
            cells = []
            for index, n in enumerate(sizes):
                seen = rates(draw, n, args.runs, seed=7919 * index + len(name))
                mark = "!" if scenarios is REGRESSIONS and round(seen["no_regression"] * args.runs) > allowed else " "
                cells.append(
                    f"{100 * seen['no_regression']:5.1f}/{100 * seen['inconclusive']:5.1f}/"
                    f"{100 * seen['regression']:4.1f}{mark}"
                )
            print(f"{name:<52} {delta_of(draw):+7.3f} " + " ".join(f"{c:>17}" for c in cells), flush=True)
            print(f"{'':<52} {'':>7}  ({time.perf_counter() - started:.1f} s)", file=sys.stderr)


if __name__ == "__main__":
    main()
