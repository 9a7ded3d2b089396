"""The comparison grid of decaylab.lab.compare: schedules, summary and resume."""

from __future__ import annotations

import json
import math
import os
import stat
from pathlib import Path

import pytest

import decaylab as dl
from decaylab.lab.compare import compare, plan_comparison, plan_schedules, prepare_out_dir
from decaylab.lab.config import ConfigError, config_from_mapping


def test_default_plan_is_step_and_three_twins() -> None:
    config = config_from_mapping({"lr": 0.4, "gamma": 0.5, "drops": 2})
    planned = plan_schedules(config, steps_per_epoch=10, horizon=300)
    names = [(p.name, p.role) for p in planned]
    assert names == [("step", "base"), ("exp-half-life", "half-life twin"),
                     ("exp-final-lr", "final-lr twin"), ("exp-area", "area twin")]
    step = planned[0].schedule
    assert step == dl.StepDecay(initial_lr=0.4, gamma=0.5, step_size=101)
    assert planned[1].schedule == dl.match_half_life(step)
    # The final-LR twin matches the LR of the last update, t = 299.
    assert planned[2].schedule == dl.match_final_lr(step, 299)
    assert planned[2].schedule(299) == pytest.approx(step(299), rel=1e-13)
    assert dl.integrated_lr(planned[3].schedule, 300) == pytest.approx(dl.integrated_lr(step, 300))
    # Exactly `drops` drops happen before the horizon.
    assert step(299) == pytest.approx(0.4 * 0.25)


def test_user_specs_in_epochs_become_steps() -> None:
    config = config_from_mapping({
        "schedule": ["step(initial_lr=0.1, gamma=0.5, step_size=3)",
                     "exponential(initial_lr=0.1, half_life=3)"],
        "schedule_unit": "epoch", "match": "half-life",
    })
    planned = plan_schedules(config, steps_per_epoch=10, horizon=100)
    assert [(p.name, p.role) for p in planned] == [
        ("s1", "user"), ("s2", "user"), ("exp-half-life", "half-life twin")]
    assert planned[0].schedule(29) == 0.1
    assert planned[0].schedule(30) == 0.05
    assert planned[1].schedule(30) == pytest.approx(0.05)


def test_warmup_wraps_every_schedule() -> None:
    config = config_from_mapping({"warmup": 10, "lr": 0.2})
    planned = plan_schedules(config, steps_per_epoch=10, horizon=310)
    assert all(isinstance(p.schedule, dl.Warmup) for p in planned)
    assert all(p.schedule(0) == 0.0 and p.schedule(10) == pytest.approx(0.2) for p in planned)


@pytest.mark.parametrize(
    ("options", "horizon", "message"),
    [
        ({"schedule": "exponential(initial_lr=0.1, rate=0.1)", "match": "area"}, 100,
         "needs a step schedule to match"),
        ({"warmup": 100}, 100, "leaves no updates"),
        ({"drops": 5}, 6, "do not fit"),
        ({"schedule": "step(initial_lr=0.1, gamma=0.5"}, 100, "step"),
    ],
)
def test_plan_rejects_bad_schedules(options: dict, horizon: int, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        plan_schedules(config_from_mapping(options), 10, horizon)


def test_drops_misfit_names_minimum_run() -> None:
    config = config_from_mapping({"drops": 2})
    with pytest.raises(ConfigError) as caught:
        plan_schedules(config, steps_per_epoch=2, horizon=6)
    message = str(caught.value)
    assert message.startswith("drops 2 do not fit in a run of 6 updates after the warm-up")
    assert "drops every 3 updates" in message
    assert "Every run of 7 or more updates fits 2 drops" in message
    assert len(plan_schedules(config, steps_per_epoch=1, horizon=7)) == 4


def test_plan_rejects_batch_larger_than_data(tiny_options: dict) -> None:
    with pytest.raises(ConfigError, match="batch_size 100 exceeds the 48 training examples"):
        plan_comparison(config_from_mapping({**tiny_options, "batch_size": 100}))


def test_plan_rejects_cnn_on_flat_data(tiny_options: dict) -> None:
    with pytest.raises(ValueError, match="model 'cnn' needs image data"):
        plan_comparison(config_from_mapping({**tiny_options, "model": "cnn"}))


def test_summary_follows_schema(tiny_options: dict, tmp_path: Path) -> None:
    config = config_from_mapping(tiny_options)
    out = tmp_path / "out"
    summary = json.loads(compare(config, out).read_text())

    assert summary["dataset"] == tiny_options["dataset"]
    assert summary["steps_per_epoch"] == 3
    assert summary["horizon"] == 9
    assert summary["torch_threads"] == 1
    assert summary["seeds"] == 2
    assert [s["name"] for s in summary["schedules"]] == [
        "step", "exp-half-life", "exp-final-lr", "exp-area"]
    for entry in summary["schedules"]:
        schedule = dl.schedule_from_dict(entry["schedule"])
        assert entry["spec"] == schedule.to_spec()
        assert entry["unit"] == "step"
        assert entry["integrated_lr"] == pytest.approx(dl.integrated_lr(schedule, 9))
        assert [run["run_id"] for run in entry["runs"]] == [
            f"{entry['name']}-seed0", f"{entry['name']}-seed1"]
        accuracy = entry["metrics"]["final_test_accuracy"]
        assert accuracy["values"] == [run["final_test_accuracy"] for run in entry["runs"]]
        assert accuracy["mean"] == pytest.approx(sum(accuracy["values"]) / 2)
        assert set(entry["metrics"]) >= {
            "final_test_accuracy", "final_test_loss", "final_train_loss", "final_sharpness"}
        for run in entry["runs"]:
            assert (out / "runs" / run["run_id"] / "run.json").is_file()
    assert (out / "config.toml").is_file()
    assert not [p for p in (out / "runs").iterdir() if p.name.startswith(".partial-")]


def test_summary_marks_diverged_runs_nan(tiny_options: dict, tmp_path: Path) -> None:
    options = {**tiny_options, "schedule": ["step(initial_lr=1e38, gamma=1.0, step_size=5)",
                                            "step(initial_lr=0.1, gamma=0.5, step_size=2)"]}
    summary = json.loads(compare(config_from_mapping(options), tmp_path / "out").read_text())
    diverging, fine = summary["schedules"]
    assert diverging["diverged"] == 2
    assert all(run["status"] == "diverged" for run in diverging["runs"])
    assert all(math.isnan(v) for v in diverging["metrics"]["final_test_accuracy"]["values"])
    assert math.isnan(diverging["metrics"]["final_test_accuracy"]["mean"])
    assert fine["diverged"] == 0
    assert math.isfinite(fine["metrics"]["final_test_accuracy"]["mean"])


def test_resume_skips_finished_runs(tiny_options: dict, tmp_path: Path) -> None:
    config = config_from_mapping(tiny_options)
    out = tmp_path / "out"
    compare(config, out)
    finished = out / "runs" / "step-seed0"
    before = {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in finished.iterdir()}

    # Simulate an interruption: one run lost, one partial folder left over.
    for path in (out / "runs" / "exp-area-seed1").iterdir():
        path.unlink()
    (out / "runs" / "exp-area-seed1").rmdir()
    (out / "runs" / ".partial-exp-area-seed1").mkdir()
    compare(config, out, resume=True)

    after = {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in finished.iterdir()}
    assert after == before
    assert (out / "runs" / "exp-area-seed1" / "run.json").is_file()
    assert not (out / "runs" / ".partial-exp-area-seed1").exists()


def test_interrupted_run_leaves_no_partial_folder(
    tiny_options: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import decaylab.lab.compare as compare_module

    train_run = compare_module.train_run
    calls = []

    def interrupted_second_run(*args, **kwargs):
        calls.append(kwargs["run_dir"])
        if len(calls) == 2:
            (kwargs["run_dir"] / "steps.csv").write_text("step\n0\n")
            raise KeyboardInterrupt
        return train_run(*args, **kwargs)

    monkeypatch.setattr(compare_module, "train_run", interrupted_second_run)
    out = tmp_path / "out"
    with pytest.raises(KeyboardInterrupt):
        compare(config_from_mapping(tiny_options), out)
    assert calls[1].name == ".partial-step-seed1"
    assert sorted(p.name for p in (out / "runs").iterdir()) == ["step-seed0"]


def test_output_files_follow_umask(tiny_options: dict, tmp_path: Path) -> None:
    previous = os.umask(0o022)
    try:
        compare(config_from_mapping({**tiny_options, "seeds": 1}), tmp_path / "out")
    finally:
        os.umask(previous)
    files = [tmp_path / "out" / "config.toml", tmp_path / "out" / "summary.json",
             *(tmp_path / "out" / "runs" / "step-seed0").iterdir()]
    for path in files:
        assert stat.S_IMODE(path.stat().st_mode) == 0o644, path


def test_out_dir_guards(tiny_options: dict, tmp_path: Path) -> None:
    config = config_from_mapping(tiny_options)
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match="exists and is not empty; pass --resume"):
        prepare_out_dir(out, config, resume=False)
    with pytest.raises(ConfigError, match="has no config.toml"):
        prepare_out_dir(out, config, resume=True)
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]

    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(ConfigError, match="is not a folder"):
        prepare_out_dir(blocker / "sub", config, resume=False)


def test_resume_refuses_changed_config(tiny_options: dict, tmp_path: Path) -> None:
    out = tmp_path / "out"
    prepare_out_dir(out, config_from_mapping(tiny_options), resume=False)
    changed = config_from_mapping({**tiny_options, "lr": 0.2, "report": True})
    with pytest.raises(ConfigError, match="option 'lr' differs from its config.toml .* leave "
                       "those options out to use the stored values"):
        prepare_out_dir(out, changed, resume=True)
    same_results = config_from_mapping({**tiny_options, "report": True, "out": "elsewhere"})
    prepare_out_dir(out, same_results, resume=True)
