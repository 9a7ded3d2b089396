"""Shared timing, machine description and result files of the benchmarks.

Every benchmark times its contenders in interleaved rounds: round ``r``
runs each contender once, in a rotated order, so load that drifts during
the run hits all of them alike. A timing is reported as the median over
rounds with the min and max beside it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

RESULTS_DIR = Path(__file__).resolve().parent / "results"
DEFAULT_THREADS = 1


@dataclass
class Options:
    """Command-line settings shared by every benchmark."""

    smoke: bool
    threads: int
    repeats: int | None
    out: Path | None


def parse_options(description: str, argv: Sequence[str] | None = None) -> Options:
    """Parse ``--smoke``, ``--threads``, ``--repeats`` and ``--out``."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--smoke", action="store_true",
                        help="tiny sizes and repeats, to check that the benchmark runs; "
                             "the figures mean nothing")
    parser.add_argument("--threads", type=int, default=DEFAULT_THREADS,
                        help=f"torch CPU threads (default {DEFAULT_THREADS})")
    parser.add_argument("--repeats", type=int, default=None,
                        help="timed rounds per contender (default: the benchmark's own)")
    parser.add_argument("--out", type=Path, default=None,
                        help="result file (default benchmarks/results/NAME.json; "
                             "smoke runs write nothing unless given)")
    args = parser.parse_args(argv)
    if args.threads < 1:
        parser.error(f"--threads must be an integer >= 1; got {args.threads}")
    if args.repeats is not None and args.repeats < 1:
        parser.error(f"--repeats must be an integer >= 1; got {args.repeats}")
    return Options(args.smoke, args.threads, args.repeats, args.out)


def load_average() -> list[float]:
    """Return the 1, 5 and 15 minute load averages of the machine."""
    return [round(value, 2) for value in os.getloadavg()]


def cpu_model() -> str:
    """Return the CPU model name from /proc/cpuinfo, or the platform's processor string."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine_info() -> dict[str, Any]:
    """Describe the machine and software that a figure was measured on."""
    return {
        "cpu_model": cpu_model(),
        "logical_cpus": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch_version": torch.__version__,
        "numpy_version": np.__version__,
        "python_version": platform.python_version(),
        "platform": platform.platform(),
    }


@dataclass
class Stats:
    """Median, min and max of repeated measurements, in the unit of the samples."""

    median: float
    min: float
    max: float
    samples: list[float] = field(default_factory=list)

    @classmethod
    def of(cls, samples: Sequence[float]) -> "Stats":
        """Summarise ``samples`` (at least one)."""
        values = [float(value) for value in samples]
        return cls(statistics.median(values), min(values), max(values), values)

    def to_json(self) -> dict[str, Any]:
        """Return the fields as a JSON-ready dict."""
        return {"median": self.median, "min": self.min, "max": self.max, "samples": self.samples}


def time_ns(function: Callable[[], Any]) -> int:
    """Return the wall time of one call of ``function`` in nanoseconds."""
    start = time.perf_counter_ns()
    function()
    return time.perf_counter_ns() - start


def interleaved(
    contenders: Mapping[str, Callable[[], float]],
    repeats: int,
    warmups: int = 1,
) -> dict[str, Stats]:
    """Run each contender ``warmups`` times untimed, then ``repeats`` interleaved rounds.

    A contender is a function that returns its own measurement (so it can
    exclude set-up work from the timed part). Round ``r`` starts at the
    contender ``r mod len(contenders)``, so no contender always runs first.
    """
    names = list(contenders)
    for _ in range(warmups):
        for name in names:
            contenders[name]()
    samples: dict[str, list[float]] = {name: [] for name in names}
    for round_index in range(repeats):
        shift = round_index % len(names)
        for name in names[shift:] + names[:shift]:
            samples[name].append(contenders[name]())
    return {name: Stats.of(values) for name, values in samples.items()}


def goal(name: str, measured: float, limit: float, unit: str, *, at_most: bool = True,
         reason: str = "") -> dict[str, Any]:
    """Record a goal ``measured <= limit`` (or ``>=`` with ``at_most=False``) and its verdict."""
    met = measured <= limit if at_most else measured >= limit
    return {
        "goal": name,
        "measured": measured,
        "limit": limit,
        "comparison": "<=" if at_most else ">=",
        "unit": unit,
        "met": bool(met),
        "reason": reason,
    }


class Recorder:
    """Collect one benchmark's results and write them as JSON."""

    def __init__(self, name: str, command: str, options: Options) -> None:
        torch.set_num_threads(options.threads)
        self.name = name
        self.options = options
        self.data: dict[str, Any] = {
            "benchmark": name,
            "command": command,
            "smoke": options.smoke,
            "machine": machine_info(),
            "load_average_start": load_average(),
            "started": time.strftime("%Y-%m-%d %H:%M:%S %z"),
        }
        self._started = time.perf_counter()

    def __setitem__(self, key: str, value: Any) -> None:
        self.data[key] = value

    def __getitem__(self, key: str) -> Any:
        return self.data[key]

    def finish(self) -> Path | None:
        """Add the end-of-run load and duration; write the file unless this is a smoke run."""
        self.data["load_average_end"] = load_average()
        self.data["duration_s"] = round(time.perf_counter() - self._started, 2)
        path = self.options.out
        if path is None and self.options.smoke:
            return None
        path = path or RESULTS_DIR / f"{self.name}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(_plain(self.data), indent=2, allow_nan=True) + "\n",
                        encoding="utf-8")
        print(f"wrote {path}", file=sys.stderr)
        return path


def _plain(value: Any) -> Any:
    """Convert Stats, numpy scalars and tuples into JSON types."""
    if isinstance(value, Stats):
        return value.to_json()
    if isinstance(value, Mapping):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    if isinstance(value, np.generic):
        return value.item()
    return value
