"""Figures of a comparison report, drawn with matplotlib's Agg canvas.

Figures are built on ``matplotlib.figure.Figure`` directly, so no pyplot
state or window is involved. Each schedule keeps one colour in every figure.
Curves are the mean over seeds with a band from the seeds' minimum to their
maximum. A diverged run contributes until the step it diverged at.
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

import decaylab as dl
from decaylab.report.claims import base_schedule, drop_steps
from decaylab.report.load import RunFolder, RunRecord, ScheduleRecord

try:
    from matplotlib.axes import Axes
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
except ImportError as error:  # pragma: no cover - depends on the installed extras
    raise ImportError(
        "decaylab.report needs matplotlib; install it with pip install 'decaylab[lab]'"
    ) from error

_PALETTE = (
    "#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e",
    "#8c564b", "#e377c2", "#17becf", "#bcbd22", "#7f7f7f",
)
_SIZE = (7.0, 4.2)
_DPI = 120


@dataclass(frozen=True)
class FigureFile:
    """A figure of the report: its file name, caption and PNG bytes."""

    name: str
    caption: str
    png: bytes


def schedule_colors(names: Sequence[str]) -> dict[str, str]:
    """Assign each schedule name a colour, cycling through ten distinct ones."""
    return {name: _PALETTE[i % len(_PALETTE)] for i, name in enumerate(names)}


def figure_png(figure: Figure) -> bytes:
    """Render ``figure`` to PNG bytes through the Agg canvas."""
    FigureCanvasAgg(figure)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=_DPI, metadata={"Software": None})
    return buffer.getvalue()


def new_axes(title: str, xlabel: str, ylabel: str) -> tuple[Figure, Axes]:
    figure = Figure(figsize=_SIZE, layout="constrained")
    axes = figure.add_subplot()
    axes.set_title(title)
    axes.set_xlabel(xlabel)
    axes.set_ylabel(ylabel)
    axes.grid(True, which="major", alpha=0.3)
    return figure, axes


def draw_schedules(schedules: Mapping[str, dl.Schedule], horizon: int) -> Figure:
    """Draw ``lr(t)`` for ``t = 0 .. horizon - 1`` of each schedule as a step function.

    Update ``t`` uses ``lr(t)`` from ``t`` to ``t + 1``, so each curve is drawn
    with ``drawstyle="steps-post"`` and a drop is vertical at its update. The
    y axis is logarithmic when every LR drawn is positive and linear
    otherwise, so a schedule that is 0 somewhere stays visible.
    """
    figure, axes = new_axes("Learning rate", "update t", "learning rate")
    colors = schedule_colors(list(schedules))
    times = np.arange(horizon, dtype=np.float64)
    # The extra point at t = horizon closes the last update's step.
    edges = np.arange(horizon + 1, dtype=np.float64)
    curves = []
    for name, schedule in schedules.items():
        lr = schedule(times)
        axes.plot(edges, np.append(lr, lr[-1]), drawstyle="steps-post", color=colors[name],
                  label=name, lw=1.6)
        curves.append(lr)
    _use_log_if_positive(axes, *curves)
    axes.legend(loc="best", fontsize="small")
    return figure


def band(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return mean, min and max over rows, NaN in columns with no finite value."""
    finite = np.isfinite(matrix)
    count = finite.sum(axis=0)
    filled = np.where(finite, matrix, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(count > 0, filled.sum(axis=0) / count, np.nan)
    low = np.where(count > 0, np.where(finite, matrix, np.inf).min(axis=0), np.nan)
    high = np.where(count > 0, np.where(finite, matrix, -np.inf).max(axis=0), np.nan)
    return mean, low, high


def moving_average(series: np.ndarray, width: int) -> np.ndarray:
    """Return the centred moving average over ``width`` steps, skipping NaN entries."""
    if width <= 1:
        return series.copy()
    finite = np.isfinite(series)
    kernel = np.ones(width)
    sums = np.convolve(np.where(finite, series, 0.0), kernel, mode="same")
    counts = np.convolve(finite.astype(float), kernel, mode="same")
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(finite & (counts > 0), sums / counts, np.nan)


def _plot_band(axes: Axes, x: np.ndarray, matrix: np.ndarray, color: str, label: str,
               style: str = "-") -> None:
    mean, low, high = band(matrix)
    axes.plot(x, mean, style, color=color, label=label, lw=1.5)
    if matrix.shape[0] > 1:
        axes.fill_between(x, low, high, color=color, alpha=0.18, lw=0)


def _mark_drops(axes: Axes, folder: RunFolder) -> None:
    base = base_schedule(folder)
    if base is None:
        return
    for drop in drop_steps(base.schedule, folder.horizon):
        axes.axvline(float(drop), color="0.6", lw=0.8, ls=":", zorder=0)


def ceiling_per_update(run: RunRecord, horizon: int) -> np.ndarray:
    """Return the stability ceiling at every update of ``run``, NaN where it is unknown.

    The ceiling is inversely proportional to the LR for every optimizer the
    sharpness probe supports, so between probes it is the last probe's
    ceiling times ``lr(probe) / lr(t)``, with ``lr`` from the ``lr`` column.
    It is NaN before the first probe with a finite ceiling and where the LR
    is 0 or missing (a diverged run's tail).
    """
    lr = run.series("lr", horizon)
    with np.errstate(invalid="ignore"):
        product = run.series("ceiling", horizon) * lr
    known = np.isfinite(product) & (product > 0)
    if not known.any():
        return np.full(horizon, np.nan)

    latest = np.maximum.accumulate(np.where(known, np.arange(horizon), -1))
    scale = np.where(latest >= 0, product[np.maximum(latest, 0)], np.nan)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(lr > 0, scale / lr, np.nan)


def _use_log_if_positive(axes: Axes, *arrays: np.ndarray) -> None:
    values = np.concatenate([a[np.isfinite(a)] for a in arrays]) if arrays else np.empty(0)
    if values.size and (values > 0).all():
        axes.set_yscale("log")


def draw_lr(folder: RunFolder) -> Figure:
    schedules = {r.name: r.schedule for r in folder.schedules}
    return draw_schedules(schedules, folder.horizon)


def draw_displacement(folder: RunFolder, colors: Mapping[str, str]) -> Figure:
    horizon = folder.horizon
    width = max(1, horizon // 100)
    figure, axes = new_axes(
        f"Displacement m_t = ||w_(t+1) - w_t|| of update t (moving average over {width})",
        "update t", "m_t",
    )
    times = np.arange(horizon)
    for record in folder.schedules:
        rows = [moving_average(run.series("displacement", horizon), width) for run in record.runs]
        matrix = np.where(np.array(rows) > 0, np.array(rows), np.nan)
        _plot_band(axes, times, matrix, colors[record.name], record.name)
    _mark_drops(axes, folder)
    axes.set_yscale("log")
    axes.legend(loc="best", fontsize="small")
    return figure


def draw_sharpness(folder: RunFolder, colors: Mapping[str, str]) -> Figure | None:
    """Draw sharpness at probe steps (solid) and the ceiling (dashed, same colour).

    The ceiling is drawn at every update from :func:`ceiling_per_update` as a
    step function, so it jumps at the update where the LR drops.
    """
    if not any(run.has_probes() for r in folder.schedules for run in r.runs):
        return None
    horizon = folder.horizon
    figure, axes = new_axes("Sharpness (solid) and stability ceiling (dashed)", "update t",
                            "top Hessian eigenvalue")
    plotted = []
    for record in folder.schedules:
        sharp = np.array([run.series("sharpness", horizon) for run in record.runs])
        probe = np.isfinite(sharp).any(axis=0)
        if not probe.any():
            continue
        ceiling = np.array([ceiling_per_update(run, horizon) for run in record.runs])
        _plot_band(axes, np.flatnonzero(probe), sharp[:, probe], colors[record.name], record.name)
        axes.plot(np.arange(horizon), band(ceiling)[0], "--", drawstyle="steps-post",
                  color=colors[record.name], lw=1.0)
        plotted.extend([sharp, ceiling])
    _mark_drops(axes, folder)
    _use_log_if_positive(axes, *plotted)
    axes.legend(loc="best", fontsize="small")
    return figure


def draw_sharpness_ratio(folder: RunFolder, colors: Mapping[str, str]) -> Figure | None:
    """Draw sharpness divided by the ceiling at probe steps, with the stability line at 1."""
    if not any(run.has_probes() for r in folder.schedules for run in r.runs):
        return None
    horizon = folder.horizon
    figure, axes = new_axes("Sharpness relative to the stability ceiling", "update t",
                            "sharpness / ceiling")
    for record in folder.schedules:
        sharp = np.array([run.series("sharpness", horizon) for run in record.runs])
        ceiling = np.array([run.series("ceiling", horizon) for run in record.runs])
        with np.errstate(invalid="ignore", divide="ignore"):
            ratio = np.where(ceiling > 0, sharp / ceiling, np.nan)
        probe = np.isfinite(ratio).any(axis=0)
        if probe.any():
            _plot_band(axes, np.flatnonzero(probe), ratio[:, probe], colors[record.name],
                       record.name)
    axes.axhline(1.0, color="0.2", lw=1.0, ls="--", label="ceiling")
    _mark_drops(axes, folder)
    axes.set_ylim(bottom=0.0)
    axes.legend(loc="best", fontsize="small")
    return figure


def epoch_matrix(record: ScheduleRecord, column: str) -> tuple[np.ndarray, np.ndarray]:
    """Return the epochs seen in any run and a (runs, epochs) matrix of ``column``, NaN where
    a run has no row for that epoch (a diverged run's missing tail)."""
    epochs = np.unique(np.concatenate([run.epochs["epoch"] for run in record.runs]))
    epochs = epochs[np.isfinite(epochs)]
    matrix = np.full((len(record.runs), epochs.size), np.nan)
    for i, run in enumerate(record.runs):
        usable = np.isfinite(run.epochs["epoch"])
        positions = np.searchsorted(epochs, run.epochs["epoch"][usable])
        matrix[i, positions] = run.epochs[column][usable]
    return epochs, matrix


def draw_losses(folder: RunFolder, colors: Mapping[str, str]) -> Figure:
    figure = Figure(figsize=(_SIZE[0] * 1.5, _SIZE[1]), layout="constrained")
    left, right = figure.subplots(1, 2, sharey=True)
    for axes, column, title in ((left, "train_loss", "Train loss"), (right, "test_loss", "Test loss")):
        matrices = []
        for record in folder.schedules:
            x, matrix = epoch_matrix(record, column)
            _plot_band(axes, x, matrix, colors[record.name], record.name)
            matrices.append(matrix)
        axes.set_title(title)
        axes.set_xlabel("epoch")
        axes.grid(True, alpha=0.3)
        _use_log_if_positive(axes, *matrices)
    left.set_ylabel("loss")
    left.legend(loc="best", fontsize="small")
    return figure


def accuracy_limits(curves: Sequence[tuple[np.ndarray, np.ndarray]]) -> tuple[float, float] | None:
    """Return y limits for ``(epochs, matrix)`` curves that fit the second half of the epochs.

    The bottom is the lowest finite value at an epoch in the second half of
    the epoch range and the top is the highest finite value anywhere, each
    widened by 10 % of that span (at least 0.005). Returns None when the
    second half contains no finite value.
    """
    epochs = np.concatenate([x for x, _ in curves]) if curves else np.empty(0)
    if epochs.size == 0:
        return None
    middle = (epochs.min() + epochs.max()) / 2.0
    late = np.concatenate([matrix[:, x >= middle].ravel() for x, matrix in curves])
    every = np.concatenate([matrix.ravel() for _, matrix in curves])
    late, every = late[np.isfinite(late)], every[np.isfinite(every)]
    if late.size == 0:
        return None

    low, high = float(late.min()), float(every.max())
    margin = max(0.1 * (high - low), 0.005)
    return low - margin, high + margin


def draw_accuracy(folder: RunFolder, colors: Mapping[str, str]) -> Figure:
    """Draw test accuracy per epoch; the y axis fits the second half of the epochs."""
    figure, axes = new_axes("Test accuracy", "epoch", "test accuracy")
    curves = []
    for record in folder.schedules:
        x, matrix = epoch_matrix(record, "test_accuracy")
        _plot_band(axes, x, matrix, colors[record.name], record.name)
        curves.append((x, matrix))
    limits = accuracy_limits(curves)
    if limits is not None:
        axes.set_ylim(*limits)
    axes.legend(loc="best", fontsize="small")
    return figure


def draw_final_scatter(folder: RunFolder, colors: Mapping[str, str]) -> Figure | None:
    """Draw one point per finished run: final sharpness against final test accuracy."""
    figure, axes = new_axes("Final sharpness and final test accuracy (one point per run)",
                            "final sharpness", "final test accuracy")
    drawn = 0
    for record in folder.schedules:
        points = [(run.finals["final_sharpness"], run.finals["final_test_accuracy"])
                  for run in record.runs if not run.diverged]
        points = [(x, y) for x, y in points if math.isfinite(x) and math.isfinite(y)]
        if points:
            xs, ys = zip(*points)
            axes.scatter(xs, ys, color=colors[record.name], label=record.name, s=36, alpha=0.85)
            drawn += len(points)
    if drawn == 0:
        return None
    axes.legend(loc="best", fontsize="small")
    return figure


FIGURES: tuple[tuple[str, str, Callable[[RunFolder, Mapping[str, str]], Figure | None]], ...] = (
    ("lr.png", "Learning rate of each schedule over the run, one step per update (log scale "
     "when every LR is positive, linear otherwise).",
     lambda folder, colors: draw_lr(folder)),
    ("displacement.png", "Per-update displacement m_t, mean over seeds with min-max band "
     "(log scale); dotted lines mark the step schedule's LR drops.", draw_displacement),
    ("sharpness.png", "Sharpness at probe steps, mean over seeds with min-max band, and the "
     "stability ceiling at every update (dashed, same colour), scaled from the last probe by "
     "the LR ratio.", draw_sharpness),
    ("sharpness_ratio.png", "Sharpness divided by the stability ceiling at probe steps; above "
     "the dashed line at 1 the update is unstable along the top eigenvector.",
     draw_sharpness_ratio),
    ("loss.png", "Train and test loss per epoch, mean over seeds with min-max band.", draw_losses),
    ("accuracy.png", "Test accuracy per epoch, mean over seeds with min-max band; the y axis "
     "fits the second half of the epochs, so early epochs may lie below it.", draw_accuracy),
    ("final_sharpness_accuracy.png", "Final sharpness against final test accuracy, one point "
     "per finished run.", draw_final_scatter),
)
"""Report figures in order: file name, caption and the function that draws it."""


def render_figures(folder: RunFolder) -> tuple[list[FigureFile], list[str]]:
    """Draw every report figure; return the figures and the names left out for lack of data."""
    colors = schedule_colors([r.name for r in folder.schedules])
    drawn, left_out = [], []
    for name, caption, draw in FIGURES:
        figure = draw(folder, colors)
        if figure is None:
            left_out.append(name)
        else:
            drawn.append(FigureFile(name, caption, figure_png(figure)))
    return drawn, left_out
