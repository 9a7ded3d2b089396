"""Atomic run-folder writing of decaylab.lab.store."""

from __future__ import annotations

import json
import math
import os
import stat
from pathlib import Path

import pytest

from decaylab.lab.store import (
    CsvLog,
    commit_run_folder,
    finished_run_ids,
    format_cell,
    new_run_folder,
    remove_partial_runs,
    write_json_atomic,
    write_text_atomic,
)


def test_write_text_atomic_replaces_and_leaves_no_temporary(tmp_path: Path) -> None:
    path = tmp_path / "a.txt"
    write_text_atomic(path, "one")
    write_text_atomic(path, "two")
    assert path.read_text() == "two"
    assert [entry.name for entry in tmp_path.iterdir()] == ["a.txt"]


def test_write_json_keeps_nan(tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    write_json_atomic(path, {"x": math.nan, "y": [1.5]})
    assert "NaN" in path.read_text()
    assert math.isnan(json.loads(path.read_text())["x"])


def test_format_cell_is_exact() -> None:
    assert format_cell(None) == ""
    assert float(format_cell(0.1 + 0.2)) == 0.1 + 0.2
    assert format_cell(math.nan) == "nan"
    assert format_cell(3) == "3"


def test_csv_log_fixed_columns(tmp_path: Path) -> None:
    path = tmp_path / "log.csv"
    with CsvLog(path, ("step", "lr", "sharpness")) as log:
        log.write({"step": 0, "lr": 0.5, "extra": 9.0})
        log.write({"step": 1, "lr": 0.25, "sharpness": 2.0})
    assert path.read_text() == "step,lr,sharpness\n0,0.5,\n1,0.25,2.0\n"


def test_run_folder_appears_complete_or_not_at_all(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    partial = new_run_folder(runs, "step-seed0")
    (partial / "steps.csv").write_text("step\n")
    assert finished_run_ids(runs) == set()

    (partial / "run.json").write_text("{}")
    assert finished_run_ids(runs) == set()
    final = commit_run_folder(partial, "step-seed0")
    assert final == runs / "step-seed0"
    assert not partial.exists()
    assert finished_run_ids(runs) == {"step-seed0"}


def test_commit_refuses_to_overwrite(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    (runs / "step-seed0").mkdir(parents=True)
    partial = new_run_folder(runs, "step-seed0")
    with pytest.raises(FileExistsError, match="is not overwritten"):
        commit_run_folder(partial, "step-seed0")


def test_partial_folders_removed(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    stale = new_run_folder(runs, "exp-area-seed1")
    (stale / "steps.csv").write_text("half")
    (runs / "step-seed0").mkdir()
    (runs / "step-seed0" / "run.json").write_text("{}")
    assert remove_partial_runs(runs) == [".partial-exp-area-seed1"]
    assert sorted(entry.name for entry in runs.iterdir()) == ["step-seed0"]


@pytest.mark.parametrize(("umask", "mode"), [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_atomic_write_mode_follows_umask(tmp_path: Path, umask: int, mode: int) -> None:
    previous = os.umask(umask)
    try:
        write_text_atomic(tmp_path / "a.txt", "one")
        write_json_atomic(tmp_path / "b.json", {"x": 1})
        with CsvLog(tmp_path / "c.csv", ("step",)) as log:
            log.write({"step": 0})
    finally:
        os.umask(previous)
    for name in ("a.txt", "b.json", "c.csv"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == mode, name
