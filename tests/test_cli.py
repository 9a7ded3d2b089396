"""The decaylab command line: compare, plot, match, exit status and resume."""

from __future__ import annotations

import errno
import importlib.util
import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from decaylab.cli import main

HAS_REPORT = importlib.util.find_spec("decaylab.report") is not None
# The report is written only where decaylab.report exists; the rest of each
# test runs either way.
REPORT = [] if HAS_REPORT else ["--report", "off"]


def _npz(folder: Path, count: int = 60) -> Path:
    rng = np.random.default_rng(3)
    labels = np.arange(count) % 3
    path = folder / "blobs.npz"
    np.savez(path, X=rng.normal(size=(3, 5))[labels] * 3 + rng.normal(size=(count, 5)), y=labels)
    return path


def _tiny(data: Path, out: Path, *extra: str) -> list[str]:
    return ["compare", "--dataset", str(data), "--epochs", "3", "--seeds", "1",
            "--batch-size", "16", "--lr", "0.1", "--hidden", "8", "--sharpness-every", "3",
            "--sharpness-examples", "20", "--threads", "1", "--out", str(out), *REPORT, *extra]


def _cli(*args: str, cwd: Path | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    environment = {**os.environ, "MPLCONFIGDIR": os.environ.get("MPLCONFIGDIR", "/tmp/decaylab-mpl")}
    return subprocess.run([sys.executable, "-m", "decaylab.cli", *args], capture_output=True,
                          text=True, timeout=timeout, cwd=cwd, env=environment)


# Bad input: exit status 2, one line, no folder ------------------------------

def _bad_inputs(tmp_path: Path) -> list[tuple[list[str], str]]:
    data = _npz(tmp_path)
    no_y = tmp_path / "no_y.npz"
    np.savez(no_y, X=np.zeros((5, 2)))
    short = tmp_path / "short.npz"
    np.savez(short, X=np.zeros((5, 2)), y=np.zeros(4))
    nan = tmp_path / "nan.npz"
    np.savez(nan, X=np.full((6, 2), np.nan), y=np.arange(6) % 2)
    text = tmp_path / "text.csv"
    text.write_text("a,b,y\n1,oops,0\n2,3,1\n")
    labelled = tmp_path / "labelled.csv"
    labelled.write_text("a,b\n1,0\n2,1\n")
    corrupt = tmp_path / "idx"
    corrupt.mkdir()
    for name in ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
                 "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        (corrupt / name).write_bytes(b"not gzip")
    occupied = tmp_path / "occupied"
    occupied.mkdir()
    (occupied / "keep.txt").write_text("mine")
    blocker = tmp_path / "blocker"
    blocker.write_text("a file")
    return [
        (["--dataset", "cifar10"], "unknown dataset 'cifar10'"),
        (["--model", "resnet"], "unknown model 'resnet'"),
        (["--optimizer", "lion"], "unknown optimizer 'lion'"),
        (["--dataset", str(tmp_path / "absent.npz")], "data file not found"),
        (["--dataset", "mnist", "--data-dir", str(corrupt)], "cannot read IDX file"),
        (["--dataset", "mnist", "--data-dir", str(tmp_path / "nowhere")], "not found"),
        (["--dataset", str(no_y)], "missing array y"),
        (["--dataset", str(short)], "X has 5 rows but y has 4"),
        (["--dataset", str(text)], "'oops' is not a number"),
        (["--dataset", str(labelled), "--label-column", "target"], "label column 'target'"),
        (["--dataset", str(nan)], "NaN or infinite"),
        (["--epochs", "0"], "epochs must be an integer >= 1; got 0"),
        (["--seeds", "-2"], "seeds must be an integer >= 1; got -2"),
        (["--batch-size", "0"], "batch_size must be an integer >= 1; got 0"),
        (["--schedule", "step(initial_lr=0.1, gamma=", "--match", "none"], "schedule"),
        (["--model", "cnn", "--dataset", str(data)], "model 'cnn' needs image data"),
        (["--out", str(occupied)], "exists and is not empty; pass --resume"),
        (["--out", str(blocker / "run")], "is not a folder"),
        (["--data-dir", str(corrupt)], "data_dir applies only to mnist and fashion-mnist"),
        (["--resume", "--out", ""], "--resume needs --out DIR"),
    ]


def test_bad_input_exits_2_without_folder(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    data = _npz(tmp_path)
    for extra, message in _bad_inputs(tmp_path):
        out = tmp_path / "never"
        args = _tiny(data, out)
        # Later flags win, so each case overrides one tiny option.
        code = main(args + extra)
        err = capsys.readouterr().err
        assert code == 2, (extra, err)
        assert message in err, (extra, err)
        assert len(err.strip().splitlines()) == 1, (extra, err)
        assert "Traceback" not in err
        assert not out.exists(), extra
    assert (tmp_path / "occupied" / "keep.txt").read_text() == "mine"


def test_bad_config_file(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    config = tmp_path / "options.toml"
    config.write_text('epochs = 2\ncolour = "red"\n')
    assert main(["compare", "--config", str(config), "--out", str(tmp_path / "o")]) == 2
    assert "unknown option 'colour'" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["compare", "--dataset", "cifar10"], "unknown dataset 'cifar10'"),
        (["compare", "--epochs", "-1"], "epochs must be an integer >= 1"),
        (["match", "step(initial_lr=0.1", "--by", "area", "--horizon", "9"], "error"),
    ],
)
def test_bad_input_subprocess_has_no_traceback(tmp_path: Path, args: list[str], message: str) -> None:
    result = _cli(*args, cwd=tmp_path)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "decaylab-runs").exists()


# Help, match, plot ---------------------------------------------------------

def test_help_states_units(capsys: pytest.CaptureFixture) -> None:
    assert main(["compare", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    for phrase in ("length of each run (epochs)", "minibatch size (examples)",
                   "every N updates (steps", "before every schedule (steps)",
                   "(examples; 0 uses all)"):
        assert phrase in text


def test_help_explains_resume(capsys: pytest.CaptureFixture) -> None:
    assert main(["compare", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "'decaylab compare --resume --out DIR' reads every other option from DIR/config.toml" in text
    assert "other datasets reject it" in text


def test_resume_without_out_is_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["compare", "--resume"]) == 2
    assert "--resume needs --out DIR, the run folder to continue" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_resume_of_missing_folder_is_bad_input(tmp_path: Path,
                                              capsys: pytest.CaptureFixture) -> None:
    missing = tmp_path / "typo"
    assert main(["compare", "--resume", "--out", str(missing)]) == 2
    assert "nothing to resume" in capsys.readouterr().err
    assert not missing.exists()


def test_constant_wd_zero_warmup_rejected(tmp_path: Path,
                                                       capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "out"
    args = _tiny(_npz(tmp_path), out, "--optimizer", "adamw", "--weight-decay", "0.1",
                 "--wd-policy", "constant", "--warmup", "2")

    assert main(args) == 2

    error = capsys.readouterr().err
    assert "has lr 0 at step 0" in error
    assert "--wd-policy follow" in error
    assert not out.exists()


def test_constant_wd_with_warmup_above_zero_runs(tmp_path: Path) -> None:
    out = tmp_path / "out"
    spec = "warmup(step(0.1, 0.5, 4), steps=2, start_lr=0.01)"
    args = _tiny(_npz(tmp_path), out, "--optimizer", "adamw", "--weight-decay", "0.1",
                 "--wd-policy", "constant", "--schedule", spec, "--report", "off")

    assert main(args) == 0
    assert (out / "summary.json").is_file()


def test_match_prints_twin_and_comparison(capsys: pytest.CaptureFixture) -> None:
    code = main(["match", "step(initial_lr=0.1, gamma=0.5, step_size=30)", "--by", "area",
                 "--horizon", "90"])
    lines = capsys.readouterr().out.splitlines()
    assert code == 0
    assert lines[0].startswith("exponential(initial_lr=0.1")
    assert "step/twin 1" in lines[1]


def test_match_half_life_without_horizon(capsys: pytest.CaptureFixture) -> None:
    assert main(["match", "step(initial_lr=0.1, gamma=0.5, step_size=30)", "--by", "half-life"]) == 0
    out = capsys.readouterr().out
    assert "decay_steps=30" in out or "half_life=30" in out
    assert "pass --horizon N" in out


def test_match_needs_horizon_and_step(capsys: pytest.CaptureFixture) -> None:
    assert main(["match", "step(initial_lr=0.1, gamma=0.5, step_size=30)", "--by", "area"]) == 2
    assert "--by area needs --horizon N" in capsys.readouterr().err
    assert main(["match", "exponential(initial_lr=0.1, rate=0.1)", "--by", "half-life"]) == 2
    assert "needs a step(...)" in capsys.readouterr().err


def test_plot_writes_png(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    pytest.importorskip("decaylab.report")
    out = tmp_path / "schedules.png"
    code = main(["plot", "step(initial_lr=0.1, gamma=0.5, step_size=30)",
                 "exponential(initial_lr=0.1, half_life=30)", "--horizon", "90", "--out", str(out)])
    assert code == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert str(out) in capsys.readouterr().out


def test_plot_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    spec = "step(initial_lr=0.1, gamma=0.5, step_size=30)"
    assert main(["plot", spec, "--horizon", "0", "--out", str(tmp_path / "a.png")]) == 2
    assert main(["plot", spec, "--horizon", "9", "--out", str(tmp_path / "no" / "a.png")]) == 2
    err = capsys.readouterr().err
    assert "--horizon must be an integer >= 2 (updates to draw); got 0" in err
    assert "does not exist" in err


# Compare -------------------------------------------------------------------

def test_compare_writes_folder(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "out"
    config = tmp_path / "options.toml"
    config.write_text('epochs = 9\nbatch-size = 8\n')
    # Flags override the file: epochs 3 from the command line, batch size 8 from the file.
    code = main(["compare", "--config", str(config), *_tiny(_npz(tmp_path), out)[1:],
                 "--batch-size", "8"])
    assert code == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["epochs"] == 3
    assert summary["batch_size"] == 8
    assert (out / "config.toml").read_text().count("epochs = 3") == 1
    printed = capsys.readouterr().out.strip()
    if HAS_REPORT:
        assert Path(printed).parent == out
        assert Path(printed).is_file()
    else:
        assert printed == str(out / "summary.json")


def test_default_out_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    args = [arg for arg in _tiny(_npz(tmp_path), tmp_path) if arg not in ("--out", str(tmp_path))]
    assert main(args) == 0
    created = list((tmp_path / "decaylab-runs").iterdir())
    assert len(created) == 1
    assert created[0].name.startswith("compare-")
    assert (created[0] / "summary.json").is_file()


@pytest.mark.slow
def test_kill_then_resume_keeps_finished_runs(tmp_path: Path) -> None:
    data = _npz(tmp_path, count=300)
    out = tmp_path / "out"
    args = _tiny(data, out) + ["--epochs", "10", "--seeds", "2", "--sharpness-every", "2"]
    environment = {**os.environ, "MPLCONFIGDIR": "/tmp/decaylab-mpl"}
    process = subprocess.Popen([sys.executable, "-m", "decaylab.cli", *args],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=environment)
    try:
        deadline = time.monotonic() + 120
        while not list((out / "runs").glob("*/run.json")):
            assert process.poll() is None, process.stderr.read().decode()
            assert time.monotonic() < deadline, "no run finished within 120 s"
            time.sleep(0.05)
        process.send_signal(signal.SIGKILL)
    finally:
        process.wait(timeout=30)
        process.stderr.close()

    finished = {path.parent.name: path.parent for path in (out / "runs").glob("*/run.json")}
    assert finished, "the killed comparison left no finished run"
    assert len(finished) < 8, "the comparison ended before it was killed; make it longer"
    before = {
        (run, file.name): (file.read_bytes(), file.stat().st_mtime_ns)
        for run, folder in finished.items() for file in folder.iterdir()
    }

    result = _cli(*args, "--resume", timeout=300)
    assert result.returncode == 0, result.stderr

    after = {
        (run, file.name): (file.read_bytes(), file.stat().st_mtime_ns)
        for run, folder in finished.items() for file in folder.iterdir()
    }
    assert after == before
    runs = sorted(path.name for path in (out / "runs").iterdir())
    assert runs == sorted(f"{name}-seed{seed}" for name in
                          ("step", "exp-half-life", "exp-final-lr", "exp-area") for seed in (0, 1))
    assert all((out / "runs" / run / "run.json").is_file() for run in runs)
    summary = json.loads((out / "summary.json").read_text())
    assert sum(len(entry["runs"]) for entry in summary["schedules"]) == 8


def test_resume_with_changed_option_refused(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    data, out = _npz(tmp_path), tmp_path / "out"
    assert main(_tiny(data, out)) == 0
    summary_before = (out / "summary.json").read_bytes()
    assert main(_tiny(data, out) + ["--resume", "--lr", "0.2"]) == 2
    assert "option 'lr' differs" in capsys.readouterr().err
    # Without the other options, the stored ones fill in and lr still differs.
    assert main(["compare", "--resume", "--out", str(out), "--lr", "0.2"]) == 2
    err = capsys.readouterr().err
    assert "option 'lr' differs from its config.toml (all differing: lr)" in err
    assert (out / "summary.json").read_bytes() == summary_before
    # An option that changes no result may differ.
    assert main(["compare", "--resume", "--out", str(out), "--report", "off"]) == 0


def _printed_command(err: str) -> list[str]:
    """Return the words of the command after "continue with:" on stderr."""
    lines = [line for line in err.splitlines() if "continue with: " in line]
    assert len(lines) == 1, err
    words = shlex.split(lines[0].split("continue with: ", 1)[1])
    assert words[:2] == ["decaylab", "compare"], words
    return words[1:]


def _fail_second_commit(monkeypatch: pytest.MonkeyPatch, error: BaseException) -> None:
    import decaylab.lab.compare as compare_module

    commit = compare_module.commit_run_folder
    calls = []

    def failing_commit(partial: Path, run_id: str) -> Path:
        calls.append(run_id)
        if len(calls) == 2:
            raise error
        return commit(partial, run_id)

    monkeypatch.setattr(compare_module, "commit_run_folder", failing_commit)


def test_failure_hint_is_a_working_command(tmp_path: Path, capsys: pytest.CaptureFixture,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    data, out = _npz(tmp_path), tmp_path / "my runs" / "out"
    _fail_second_commit(monkeypatch, OSError(errno.ENOSPC, "No space left on device"))
    assert main(_tiny(data, out, "--seeds", "2")) == 1
    err = capsys.readouterr().err
    assert err.splitlines()[0] == (
        f"decaylab: error: [Errno 28] No space left on device (in the run folder {out})")
    monkeypatch.undo()

    # Only --resume and --out: the other options come from the stored config.toml.
    command = _printed_command(err)
    assert command == ["compare", "--resume", "--out", str(out)]
    finished = (out / "runs" / "step-seed0" / "steps.csv").read_bytes()
    result = _cli(*command, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert (summary["epochs"], summary["seeds"], summary["batch_size"]) == (3, 2, 16)
    assert (out / "runs" / "step-seed0" / "steps.csv").read_bytes() == finished
    assert not list((out / "runs").glob(".partial-*"))


def test_interrupt_prints_one_line(tmp_path: Path, capsys: pytest.CaptureFixture,
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    data, out = _npz(tmp_path), tmp_path / "out"
    _fail_second_commit(monkeypatch, KeyboardInterrupt())
    try:
        code = main(_tiny(data, out, "--seeds", "2"))
    except KeyboardInterrupt:
        pytest.fail("KeyboardInterrupt escaped main()")
    assert code == 130
    err = capsys.readouterr().err
    expected = (f"decaylab: comparison interrupted; 1 of 8 runs finished and are kept in {out}; "
                f"continue with: decaylab compare --resume --out {out}")
    assert err.splitlines() == [expected]
    assert sorted(p.name for p in (out / "runs").iterdir()) == ["step-seed0"]
    monkeypatch.undo()

    assert main(_printed_command(err)) == 0
    assert len(list((out / "runs").glob("*/run.json"))) == 8


@pytest.mark.slow
def test_sigint_then_printed_command_resumes(tmp_path: Path) -> None:
    data = _npz(tmp_path, count=300)
    out = tmp_path / "out"
    args = _tiny(data, out) + ["--epochs", "10", "--seeds", "2", "--sharpness-every", "2"]
    environment = {**os.environ, "MPLCONFIGDIR": "/tmp/decaylab-mpl"}
    process = subprocess.Popen([sys.executable, "-m", "decaylab.cli", *args],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                               env=environment)
    try:
        deadline = time.monotonic() + 120
        while not list((out / "runs").glob("*/run.json")):
            assert process.poll() is None, process.stderr.read()
            assert time.monotonic() < deadline, "no run finished within 120 s"
            time.sleep(0.05)
        process.send_signal(signal.SIGINT)
        err = process.communicate(timeout=60)[1]
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()

    assert process.returncode == 130, err
    assert "Traceback" not in err
    assert err.strip().splitlines()[-1].startswith("decaylab: comparison interrupted; ")
    assert not list((out / "runs").glob(".partial-*"))
    finished = {path.parent.name for path in (out / "runs").glob("*/run.json")}
    assert 0 < len(finished) < 8, "the comparison ended before the interrupt; make it longer"

    result = _cli(*_printed_command(err), timeout=300)
    assert result.returncode == 0, result.stderr
    assert len(list((out / "runs").glob("*/run.json"))) == 8


@pytest.mark.slow
def test_default_like_comparison_end_to_end(tmp_path: Path) -> None:
    """The default configuration with fewer epochs and seeds, as a user runs it."""
    out = tmp_path / "out"
    result = _cli("compare", "--epochs", "20", "--seeds", "2", "--out", str(out), *REPORT,
                  timeout=600)
    assert result.returncode == 0, result.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["dataset"] == "digits"
    assert summary["horizon"] == 60
    assert [entry["diverged"] for entry in summary["schedules"]] == [0, 0, 0, 0]
    for entry in summary["schedules"]:
        assert entry["metrics"]["final_test_accuracy"]["mean"] > 0.85
        # Large-LR full-ish batch SGD drives sharpness to the ceiling 2/lr.
        assert max(entry["metrics"]["max_sharpness_ratio"]["values"]) > 0.8
    if HAS_REPORT:
        assert (out / "report.md").is_file()
        assert (out / "report.html").is_file()
