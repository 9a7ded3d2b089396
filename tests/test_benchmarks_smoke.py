"""Smoke runs of every benchmark, so the benchmark code keeps working as the library changes.

Each benchmark runs with ``--smoke`` (tiny sizes and repeats) into a
temporary folder, and the results page is rendered from those files. No
test asserts on a timing: the figures of a smoke run mean nothing.
"""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks import render  # noqa: E402
from benchmarks.run_all import BENCHMARKS  # noqa: E402

# The eigenvalue sweep and the compare runs take tens of seconds even when small.
SLOW = {"eigenvalue", "compare_throughput"}
PARAMS = [pytest.param(name, marks=pytest.mark.slow) if name in SLOW else name for name in BENCHMARKS]


@pytest.fixture(scope="module")
def results_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("benchmark-results")


@pytest.mark.parametrize("name", PARAMS)
def test_benchmark_smoke_run(name: str, results_dir: Path) -> None:
    module = importlib.import_module(f"benchmarks.{name}")
    out = results_dir / f"{name}.json"

    module.main(["--smoke", "--threads", "1", "--out", str(out)])

    saved = json.loads(out.read_text(encoding="utf-8"))
    assert saved["benchmark"] == name
    assert saved["smoke"] is True
    assert saved["machine"]["torch_threads"] == 1
    assert len(saved["load_average_start"]) == 3
    assert len(saved["load_average_end"]) == 3
    assert saved["goals"], "every benchmark states at least one goal"
    for record in saved["goals"]:
        assert isinstance(record["met"], bool)


def test_smoke_run_writes_nothing_by_default(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from benchmarks import _harness, scheduler_step

    monkeypatch.setattr(_harness, "RESULTS_DIR", tmp_path)

    scheduler_step.main(["--smoke"])

    assert list(tmp_path.iterdir()) == []


def test_render_page_from_smoke_results(results_dir: Path, tmp_path: Path) -> None:
    scheduler = importlib.import_module("benchmarks.scheduler_step")
    if not (results_dir / "scheduler_step.json").exists():
        scheduler.main(["--smoke", "--out", str(results_dir / "scheduler_step.json")])
    page = tmp_path / "benchmarks.md"

    render.main(["--results", str(results_dir), "--out", str(page)])

    text = page.read_text(encoding="utf-8")
    assert text.startswith("# Benchmarks")
    assert "2-core machine" in text
    assert "## Scheduler step cost" in text
    assert "| [scheduler_step](#scheduler-step-cost) |" in text


def test_render_rejects_empty_folder(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="no result files"):
        render.main(["--results", str(tmp_path), "--out", str(tmp_path / "page.md")])


def test_options_reject_zero_threads() -> None:
    from benchmarks._harness import parse_options

    with pytest.raises(SystemExit):
        parse_options("x", ["--threads", "0"])
