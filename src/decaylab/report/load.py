"""Read and validate a run folder written by ``decaylab compare``.

The folder layout::

    config.toml                  resolved configuration
    summary.json                 setup, schedules and per-run final values
    runs/<run_id>/steps.csv      one row per optimizer update
    runs/<run_id>/epochs.csv     one row per epoch
    runs/<run_id>/run.json       status and the step a diverged run stopped at

Every check raises ``FileNotFoundError`` for a missing file and ``ValueError``
for a malformed one, and the message names the file, the key or column and
the value found, so a broken folder fails before any output is written.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

import decaylab as dl

STEP_COLUMNS: tuple[str, ...] = (
    "step", "epoch", "lr", "displacement", "grad_norm", "step_ratio", "train_loss",
)
"""Columns every ``steps.csv`` must have."""

PROBE_COLUMNS: tuple[str, ...] = ("sharpness", "ceiling")
"""Columns of ``steps.csv`` that may be absent when no sharpness probe ran."""

EPOCH_COLUMNS: tuple[str, ...] = ("epoch", "step", "train_loss", "test_loss", "test_accuracy")
"""Columns every ``epochs.csv`` must have."""

SUMMARY_KEYS: tuple[str, ...] = (
    "torch_version", "torch_threads", "dataset", "model", "optimizer", "epochs",
    "seeds", "batch_size", "steps_per_epoch", "horizon", "schedules",
)
SCHEDULE_KEYS: tuple[str, ...] = ("name", "role", "spec", "schedule", "runs")
RUN_KEYS: tuple[str, ...] = ("run_id", "seed", "status", "diverged_at_step")
FINAL_KEYS: tuple[str, ...] = (
    "final_test_accuracy", "final_test_loss", "final_train_loss", "final_sharpness",
)
RUN_STATUSES: tuple[str, ...] = ("finished", "diverged")


@dataclass(frozen=True)
class RunRecord:
    """One training run: its identity, final values and per-step/per-epoch columns."""

    run_id: str
    seed: int
    status: str
    diverged_at_step: int | None
    finals: dict[str, float]
    steps: dict[str, np.ndarray]
    epochs: dict[str, np.ndarray]
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def diverged(self) -> bool:
        return self.status == "diverged"

    def series(self, column: str, length: int) -> np.ndarray:
        """Return ``column`` of ``steps.csv`` indexed by step, NaN where no row exists."""
        out = np.full(length, np.nan)
        values = self.steps.get(column)
        if values is None:
            return out
        steps = self.steps["step"].astype(np.int64)
        inside = steps < length
        out[steps[inside]] = values[inside]
        return out

    def has_probes(self) -> bool:
        sharpness = self.steps.get("sharpness")
        return sharpness is not None and bool(np.isfinite(sharpness).any())


@dataclass(frozen=True)
class ScheduleRecord:
    """One schedule of the comparison with all its runs (one per seed)."""

    name: str
    role: str
    spec: str
    schedule: dl.Schedule
    integrated_lr: float
    runs: tuple[RunRecord, ...]

    @property
    def diverged(self) -> int:
        return sum(run.diverged for run in self.runs)

    def run_for_seed(self, seed: int) -> RunRecord | None:
        for run in self.runs:
            if run.seed == seed:
                return run
        return None


@dataclass(frozen=True)
class RunFolder:
    """A validated run folder: the summary, the config text and every run's data."""

    path: Path
    summary: dict[str, Any]
    config_text: str
    schedules: tuple[ScheduleRecord, ...]

    @property
    def horizon(self) -> int:
        return int(self.summary["horizon"])

    def schedule_named(self, name: str) -> ScheduleRecord:
        for record in self.schedules:
            if record.name == name:
                return record
        names = [record.name for record in self.schedules]
        raise KeyError(f"no schedule named {name!r}; the folder has {names}")

    def schedule_with_role(self, role: str) -> ScheduleRecord | None:
        for record in self.schedules:
            if record.role == role:
                return record
        return None


def load_run_folder(run_dir: str | Path) -> RunFolder:
    """Read ``run_dir`` and validate every file the report needs.

    Raises ``FileNotFoundError`` naming the first missing file and
    ``ValueError`` naming the file and key or column that is malformed.
    """
    if not isinstance(run_dir, (str, Path)):
        raise TypeError(f"run_dir must be a str or pathlib.Path, got {type(run_dir).__name__}")
    root = Path(run_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"run folder not found: {root} is not a directory")

    summary = _read_json(root / "summary.json")
    _check_summary(summary)
    config_text = _read_text(root / "config.toml")

    schedules = tuple(
        _load_schedule(root, entry, f"summary.json: schedules[{index}]")
        for index, entry in enumerate(summary["schedules"])
    )
    names = [record.name for record in schedules]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise ValueError(f"summary.json: schedule names must be unique, found duplicates {duplicates}")
    return RunFolder(path=root, summary=summary, config_text=config_text, schedules=schedules)


def _read_text(path: Path) -> str:
    if not path.is_file():
        raise FileNotFoundError(f"missing file in run folder: {path}")
    return path.read_text(encoding="utf-8")


def _read_json(path: Path) -> Any:
    text = _read_text(path)
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(f"{path} is not valid JSON: {error}") from error


def _require_keys(mapping: Any, keys: Sequence[str], where: str) -> None:
    if not isinstance(mapping, Mapping):
        raise ValueError(f"{where} must be a JSON object, got {type(mapping).__name__}")
    for key in keys:
        if key not in mapping:
            raise ValueError(f"{where} is missing key {key!r}")


def _require_int(value: Any, where: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{where} must be an integer >= {minimum}, got {value!r}")
    return value


def _as_float(value: Any, where: str) -> float:
    if value is None:
        return math.nan
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{where} must be a number or null, got {value!r}")
    return float(value)


def _check_summary(summary: Any) -> None:
    _require_keys(summary, SUMMARY_KEYS, "summary.json")
    for key in ("epochs", "seeds", "batch_size", "steps_per_epoch", "horizon", "torch_threads"):
        _require_int(summary[key], f"summary.json: {key!r}", 1)
    schedules = summary["schedules"]
    if not isinstance(schedules, list) or not schedules:
        raise ValueError(f"summary.json: 'schedules' must be a non-empty list, got {schedules!r}")


def _load_schedule(root: Path, entry: Any, where: str) -> ScheduleRecord:
    _require_keys(entry, SCHEDULE_KEYS, where)
    name = entry["name"]
    unit = entry.get("unit", "step")
    if unit != "step":
        raise ValueError(
            f"{where} ({name!r}): 'unit' must be 'step' because the report evaluates "
            f"schedules at optimizer updates, got {unit!r}"
        )
    try:
        schedule = dl.schedule_from_dict(entry["schedule"])
    except (TypeError, ValueError, KeyError) as error:
        raise ValueError(f"{where} ({name!r}): invalid 'schedule' dict: {error}") from error

    runs_field = entry["runs"]
    if not isinstance(runs_field, list) or not runs_field:
        raise ValueError(f"{where} ({name!r}): 'runs' must be a non-empty list, got {runs_field!r}")
    runs = tuple(
        _load_run(root, run, f"{where}.runs[{index}]") for index, run in enumerate(runs_field)
    )
    return ScheduleRecord(
        name=str(name),
        role=str(entry["role"]),
        spec=str(entry["spec"]),
        schedule=schedule,
        integrated_lr=_as_float(entry.get("integrated_lr"), f"{where}.integrated_lr"),
        runs=runs,
    )


def _load_run(root: Path, entry: Any, where: str) -> RunRecord:
    _require_keys(entry, RUN_KEYS, where)
    run_id = entry["run_id"]
    if not isinstance(run_id, str) or not run_id or "/" in run_id or run_id in (".", ".."):
        raise ValueError(f"{where}: 'run_id' must be a plain folder name, got {run_id!r}")
    seed = _require_int(entry["seed"], f"{where}.seed", 0)
    status = entry["status"]
    if status not in RUN_STATUSES:
        raise ValueError(f"{where} ({run_id}): 'status' must be one of {RUN_STATUSES}, got {status!r}")
    diverged_at = entry["diverged_at_step"]
    if status == "diverged":
        diverged_at = _require_int(diverged_at, f"{where}.diverged_at_step", 0)
    elif diverged_at is not None:
        raise ValueError(f"{where} ({run_id}): a finished run must have diverged_at_step null, got {diverged_at!r}")
    finals = {key: _as_float(entry.get(key), f"{where}.{key}") for key in FINAL_KEYS}

    run_path = root / "runs" / run_id
    info = _read_json(run_path / "run.json")
    _require_keys(info, ("run_id", "status"), str(run_path / "run.json"))
    if info["run_id"] != run_id or info["status"] != status:
        raise ValueError(
            f"{run_path / 'run.json'} does not match summary.json: run_id {info['run_id']!r} "
            f"status {info['status']!r} versus {run_id!r} {status!r}"
        )
    steps = read_numeric_csv(run_path / "steps.csv", STEP_COLUMNS, PROBE_COLUMNS)
    epochs = read_numeric_csv(run_path / "epochs.csv", EPOCH_COLUMNS, ())
    _check_step_column(steps["step"], run_path / "steps.csv")
    return RunRecord(
        run_id=run_id, seed=seed, status=status, diverged_at_step=diverged_at,
        finals=finals, steps=steps, epochs=epochs, info=dict(info),
    )


def read_numeric_csv(
    path: Path, required: Sequence[str], optional: Sequence[str]
) -> dict[str, np.ndarray]:
    """Read a CSV of numbers into float64 columns; an empty cell becomes NaN.

    Every column in ``required`` must be in the header. Columns beyond
    ``required`` and ``optional`` are kept when all their cells are numbers,
    so per-group columns such as ``lr_g0`` come through.
    """
    if not path.is_file():
        raise FileNotFoundError(f"missing file in run folder: {path}")
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if header is None:
            raise ValueError(f"{path} is empty; expected a header with columns {list(required)}")
        header = [name.strip() for name in header]
        missing = [name for name in required if name not in header]
        if missing:
            raise ValueError(f"{path} is missing column(s) {missing}; header is {header}")
        rows = list(reader)

    known = set(required) | set(optional)
    columns: dict[str, np.ndarray] = {}
    for index, name in enumerate(header):
        values = np.empty(len(rows))
        for row_number, row in enumerate(rows):
            cell = row[index].strip() if index < len(row) else ""
            try:
                values[row_number] = float(cell) if cell else math.nan
            except ValueError:
                if name not in known:
                    break
                raise ValueError(
                    f"{path} line {row_number + 2}: column {name!r} has {cell!r}, "
                    "expected a number or an empty cell"
                ) from None
        else:
            columns[name] = values
    return columns


def _check_step_column(steps: np.ndarray, path: Path) -> None:
    finite = np.isfinite(steps)
    if not finite.all() or (steps < 0).any() or (steps != np.round(steps)).any():
        raise ValueError(f"{path}: column 'step' must hold non-negative integers on every row")
    if steps.size > 1 and (np.diff(steps) <= 0).any():
        raise ValueError(f"{path}: column 'step' must increase strictly from row to row")
