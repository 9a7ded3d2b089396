"""Figure contents: step-function curves, axis scales and ranges, the per-update ceiling."""

from __future__ import annotations

import numpy as np
import pytest

import decaylab as dl
from decaylab.report import plot_schedules
from decaylab.report.figures import (
    accuracy_limits,
    ceiling_per_update,
    draw_accuracy,
    draw_schedules,
    draw_sharpness,
    schedule_colors,
)
from decaylab.report.load import load_run_folder

STEP = dl.StepDecay(initial_lr=0.1, gamma=0.5, step_size=30)


def colors_of(folder):
    return schedule_colors([record.name for record in folder.schedules])


def test_schedule_curves_are_steps():
    figure = draw_schedules({"step": STEP, "half-life": dl.match_half_life(STEP)}, 100)
    axes = figure.axes[0]

    for line in axes.get_lines():
        assert line.get_drawstyle() == "steps-post"
        assert line.get_xdata().tolist() == list(range(101))
    step_line = axes.get_lines()[0]
    assert step_line.get_ydata()[29] == pytest.approx(0.1)
    assert step_line.get_ydata()[30] == pytest.approx(0.05)
    assert step_line.get_ydata()[100] == step_line.get_ydata()[99]
    assert axes.get_yscale() == "log"


def test_schedule_zero_lr_linear():
    zero = dl.StepDecay(initial_lr=0.0, gamma=0.5, step_size=30)

    axes = draw_schedules({"zero": zero, "step": STEP}, 100).axes[0]

    assert axes.get_yscale() == "linear"
    zero_curve = axes.get_lines()[0].get_ydata()
    assert np.isfinite(zero_curve).all()
    assert (zero_curve == 0.0).all()


def test_schedule_warmup_from_zero_linear():
    axes = draw_schedules({"warm": dl.Warmup(STEP, steps=10)}, 100).axes[0]

    assert axes.get_yscale() == "linear"
    assert axes.get_lines()[0].get_ydata()[0] == 0.0


def test_plot_schedules_zero_lr_writes_png(tmp_path):
    zero = dl.StepDecay(initial_lr=0.0, gamma=0.5, step_size=30)

    out = plot_schedules({"zero": zero}, 100, tmp_path / "zero.png")

    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(out.read_bytes()) > 10_000


def test_ceiling_every_update(make_folder):
    folder = load_run_folder(make_folder(seeds=1))
    run = folder.schedule_named("step").runs[0]

    ceiling = ceiling_per_update(run, folder.horizon)

    # The synthetic ceiling is 3.8 / lr at every probe; the drops are at 100 and 200.
    lr = run.series("lr", folder.horizon)
    assert ceiling == pytest.approx(3.8 / lr, rel=1e-12)
    assert ceiling[99] == pytest.approx(38.0)
    assert ceiling[100] == pytest.approx(76.0)


def test_ceiling_unknown_before_probe(make_folder):
    folder = load_run_folder(make_folder(seeds=1, warmup=20))
    run = folder.schedule_named("step").runs[0]

    ceiling = ceiling_per_update(run, folder.horizon)

    # lr(0) is 0 in a warm-up from 0, so the probe at t = 0 gives no finite ceiling.
    assert np.isnan(ceiling[:10]).all()
    assert ceiling[10:] == pytest.approx(3.8 / run.series("lr", folder.horizon)[10:], rel=1e-12)


def test_ceiling_stops_at_divergence(make_folder):
    folder = load_run_folder(make_folder(seeds=1, diverge={"step-seed0": 150}))
    run = folder.schedule_named("step").runs[0]

    ceiling = ceiling_per_update(run, folder.horizon)

    assert np.isfinite(ceiling[:151]).all()
    assert np.isnan(ceiling[151:]).all()


def test_ceiling_without_probes_is_nan(make_folder):
    folder = load_run_folder(make_folder(seeds=1, probe_every=None))

    assert np.isnan(ceiling_per_update(folder.schedules[0].runs[0], folder.horizon)).all()


def test_sharpness_ceiling_drawn_as_steps(make_folder):
    folder = load_run_folder(make_folder(seeds=2))

    axes = draw_sharpness(folder, colors_of(folder)).axes[0]

    dashed = [line for line in axes.get_lines() if line.get_linestyle() == "--"]
    assert len(dashed) == 2
    for line in dashed:
        assert line.get_drawstyle() == "steps-post"
        assert len(line.get_xdata()) == folder.horizon
    step_ceiling = dashed[0].get_ydata()
    assert step_ceiling[99] == pytest.approx(38.0)
    assert step_ceiling[100] == pytest.approx(76.0)


def test_accuracy_axis_fits_late_epochs(make_folder):
    folder = load_run_folder(make_folder(seeds=3))

    low, high = draw_accuracy(folder, colors_of(folder)).axes[0].get_ylim()

    # Second half of epochs 1..6 is 4..6: the lowest value there is 0.9 * (0.5 + 0.5 * 4/6)
    # = 0.75 and the highest value anywhere is 0.92, so the margin is 0.017.
    assert low == pytest.approx(0.75 - 0.017)
    assert high == pytest.approx(0.92 + 0.017)


def test_accuracy_limits_minimum_margin():
    epochs = np.array([0.0, 1.0, 2.0])
    matrix = np.array([[0.1, 0.97, 0.97]])

    assert accuracy_limits([(epochs, matrix)]) == pytest.approx((0.965, 0.975))


def test_accuracy_limits_without_values():
    epochs = np.array([1.0, 2.0])

    assert accuracy_limits([(epochs, np.full((2, 2), np.nan))]) is None
    assert accuracy_limits([]) is None
