"""Run every benchmark in turn, then render ``docs/benchmarks.md``.

Run: ``.venv/bin/python -m benchmarks.run_all`` (about 10 minutes on a
2-core machine). ``--smoke`` runs each one with tiny sizes and writes
nothing; ``--only NAME ...`` picks benchmarks; ``--threads`` is passed on.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import Any

BENCHMARKS = (
    "scheduler_step",
    "vectorised",
    "eigenvalue",
    "hvp_cost",
    "training_overhead",
    "compare_throughput",
)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the chosen benchmarks; return their results by name."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny sizes; write no results")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads for every benchmark")
    parser.add_argument("--only", nargs="+", choices=BENCHMARKS, default=list(BENCHMARKS),
                        metavar="NAME", help=f"benchmarks to run: {', '.join(BENCHMARKS)}")
    args = parser.parse_args(argv)

    passed = ["--smoke"] if args.smoke else []
    if args.threads is not None:
        passed += ["--threads", str(args.threads)]
    results = {}
    for name in args.only:
        print(f"running benchmarks.{name}", file=sys.stderr)
        module = importlib.import_module(f"benchmarks.{name}")
        results[name] = module.main(passed)
    if not args.smoke:
        from benchmarks import render

        render.main([])
    return results


if __name__ == "__main__":
    main()
