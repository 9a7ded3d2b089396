"""Reading and validating a run folder."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

import decaylab as dl
from decaylab.report.load import load_run_folder, read_numeric_csv


def test_load_valid_folder(make_folder):
    folder = load_run_folder(make_folder(seeds=2, twins=("half-life", "area")))

    assert [r.name for r in folder.schedules] == ["step", "exp-half-life", "exp-area"]
    assert folder.horizon == 300
    assert folder.schedule_named("step").schedule == dl.StepDecay(initial_lr=0.1, gamma=0.5, step_size=100)
    assert folder.schedule_with_role("area twin").name == "exp-area"
    run = folder.schedule_named("step").runs[1]
    assert run.run_id == "step-seed1"
    assert run.seed == 1
    assert run.steps["step"].shape == (300,)
    assert run.epochs["epoch"].tolist() == [1, 2, 3, 4, 5, 6]
    assert run.has_probes()
    assert math.isnan(run.steps["sharpness"][1])
    assert run.info["wall_time_s"] == 0.5


def test_series_aligns_by_step(make_folder):
    folder = load_run_folder(make_folder(seeds=1, diverge={"exp-half-life-seed0": 120}))
    run = folder.schedule_named("exp-half-life").runs[0]

    lr = run.series("lr", folder.horizon)

    assert lr.shape == (300,)
    assert np.isfinite(lr[:121]).all()
    assert np.isnan(lr[121:]).all()
    assert run.diverged
    assert run.diverged_at_step == 120
    assert math.isnan(run.finals["final_test_accuracy"])


def test_missing_summary_names_file(make_folder):
    root = make_folder(seeds=1)
    (root / "summary.json").unlink()

    with pytest.raises(FileNotFoundError, match="summary.json"):
        load_run_folder(root)


def test_missing_config_names_file(make_folder):
    root = make_folder(seeds=1)
    (root / "config.toml").unlink()

    with pytest.raises(FileNotFoundError, match="config.toml"):
        load_run_folder(root)


@pytest.mark.parametrize("name", ["steps.csv", "epochs.csv", "run.json"])
def test_missing_run_file_names_path(make_folder, name):
    root = make_folder(seeds=1)
    (root / "runs" / "exp-half-life-seed0" / name).unlink()

    with pytest.raises(FileNotFoundError, match=f"exp-half-life-seed0/{name}"):
        load_run_folder(root)


def test_missing_folder_raises(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a directory"):
        load_run_folder(tmp_path / "nowhere")


def test_run_dir_type_checked():
    with pytest.raises(TypeError, match="run_dir"):
        load_run_folder(42)


def _rewrite_csv(path: Path, old: str, new: str) -> None:
    path.write_text(path.read_text(encoding="utf-8").replace(old, new, 1), encoding="utf-8")


def test_missing_column_named(make_folder):
    root = make_folder(seeds=1)
    _rewrite_csv(root / "runs" / "step-seed0" / "steps.csv", "displacement", "disp")

    with pytest.raises(ValueError, match=r"missing column\(s\) \['displacement'\]"):
        load_run_folder(root)


def test_epochs_missing_column_named(make_folder):
    root = make_folder(seeds=1)
    _rewrite_csv(root / "runs" / "step-seed0" / "epochs.csv", "test_accuracy", "acc")

    with pytest.raises(ValueError, match="test_accuracy"):
        load_run_folder(root)


def test_non_numeric_cell_named(tmp_path):
    path = tmp_path / "steps.csv"
    path.write_text("step,lr\n0,0.1\n1,abc\n", encoding="utf-8")

    with pytest.raises(ValueError, match=r"line 3: column 'lr' has 'abc'"):
        read_numeric_csv(path, ("step", "lr"), ())


def test_extra_text_column_dropped(tmp_path):
    path = tmp_path / "steps.csv"
    path.write_text("step,lr,note\n0,0.1,warm\n1,,\n", encoding="utf-8")

    columns = read_numeric_csv(path, ("step", "lr"), ())

    assert sorted(columns) == ["lr", "step"]
    assert columns["lr"][0] == 0.1
    assert math.isnan(columns["lr"][1])


def test_empty_csv_rejected(tmp_path):
    path = tmp_path / "epochs.csv"
    path.write_text("", encoding="utf-8")

    with pytest.raises(ValueError, match="is empty"):
        read_numeric_csv(path, ("epoch",), ())


def test_probe_columns_optional(make_folder):
    root = make_folder(seeds=1, twins=())
    path = root / "runs" / "step-seed0" / "steps.csv"
    lines = path.read_text(encoding="utf-8").splitlines()
    path.write_text("\n".join(",".join(line.split(",")[:7]) for line in lines) + "\n", encoding="utf-8")

    run = load_run_folder(root).schedules[0].runs[0]

    assert "sharpness" not in run.steps
    assert not run.has_probes()


def test_decreasing_step_rejected(make_folder):
    root = make_folder(seeds=1, twins=())
    _rewrite_csv(root / "runs" / "step-seed0" / "steps.csv", "\n1,", "\n0,")

    with pytest.raises(ValueError, match="increase strictly"):
        load_run_folder(root)


def _edit_summary(root: Path, edit) -> None:
    path = root / "summary.json"
    summary = json.loads(path.read_text(encoding="utf-8"))
    edit(summary)
    path.write_text(json.dumps(summary), encoding="utf-8")


def test_summary_missing_key_named(make_folder):
    root = make_folder(seeds=1)
    _edit_summary(root, lambda s: s.pop("horizon"))

    with pytest.raises(ValueError, match="missing key 'horizon'"):
        load_run_folder(root)


def test_summary_bad_json(make_folder):
    root = make_folder(seeds=1)
    (root / "summary.json").write_text("{not json", encoding="utf-8")

    with pytest.raises(ValueError, match="not valid JSON"):
        load_run_folder(root)


def test_run_missing_key_named(make_folder):
    root = make_folder(seeds=1)
    _edit_summary(root, lambda s: s["schedules"][1]["runs"][0].pop("seed"))

    with pytest.raises(ValueError, match=r"schedules\[1\]\.runs\[0\] is missing key 'seed'"):
        load_run_folder(root)


def test_epoch_unit_rejected(make_folder):
    root = make_folder(seeds=1)
    _edit_summary(root, lambda s: s["schedules"][0].update(unit="epoch"))

    with pytest.raises(ValueError, match="'unit' must be 'step'"):
        load_run_folder(root)


def test_unknown_status_rejected(make_folder):
    root = make_folder(seeds=1)
    _edit_summary(root, lambda s: s["schedules"][0]["runs"][0].update(status="running"))

    with pytest.raises(ValueError, match="'status' must be one of"):
        load_run_folder(root)


def test_status_mismatch_rejected(make_folder):
    root = make_folder(seeds=1)
    run_json = root / "runs" / "step-seed0" / "run.json"
    run_json.write_text(json.dumps({"run_id": "step-seed0", "status": "diverged"}), encoding="utf-8")

    with pytest.raises(ValueError, match="does not match summary.json"):
        load_run_folder(root)


def test_run_id_path_rejected(make_folder):
    root = make_folder(seeds=1)
    _edit_summary(root, lambda s: s["schedules"][0]["runs"][0].update(run_id="../step-seed0"))

    with pytest.raises(ValueError, match="plain folder name"):
        load_run_folder(root)


def test_invalid_schedule_dict_named(make_folder):
    root = make_folder(seeds=1)
    _edit_summary(root, lambda s: s["schedules"][0]["schedule"].update(gamma=2.0))

    with pytest.raises(ValueError, match=r"\('step'\): invalid 'schedule' dict"):
        load_run_folder(root)


def test_duplicate_schedule_names_rejected(make_folder):
    root = make_folder(seeds=1)
    _edit_summary(root, lambda s: s["schedules"][1].update(name="step"))

    with pytest.raises(ValueError, match="duplicates"):
        load_run_folder(root)


def test_diverged_run_needs_step(make_folder):
    root = make_folder(seeds=1, diverge={"step-seed0": 50})
    _edit_summary(root, lambda s: s["schedules"][0]["runs"][0].update(diverged_at_step=None))

    with pytest.raises(ValueError, match="diverged_at_step must be an integer"):
        load_run_folder(root)
