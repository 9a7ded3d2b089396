"""The report of ``decaylab compare``: figures, results table, claims, Markdown and HTML.

:func:`write_report` turns a finished run folder into ``figures/*.png``,
``report.md`` and a self-contained ``report.html``; :func:`plot_schedules`
draws LR curves for ``decaylab plot``. Needs the ``lab`` extra (matplotlib).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

import decaylab as dl
from decaylab.report.claims import Claim
from decaylab.report.evaluate import evaluate_claims
from decaylab.report.figures import draw_schedules, figure_png, render_figures
from decaylab.report.load import RunFolder, load_run_folder
from decaylab.report.render import (
    build_document,
    report_title,
    to_html,
    to_markdown,
    write_atomic,
)
from decaylab.report.verdicts import decide

__all__ = [
    "Claim", "RunFolder", "decide", "evaluate_claims", "load_run_folder",
    "plot_schedules", "write_report",
]

logger = logging.getLogger(__name__)


def write_report(run_dir: Path | str) -> list[Path]:
    """Write ``figures/*.png``, ``report.md`` and ``report.html`` into ``run_dir``.

    The folder is validated before anything is written: a missing file raises
    ``FileNotFoundError`` and a malformed file ``ValueError``, each naming the
    file and the key or column. Every output is written atomically. Returns
    the paths written, figures first. A figure without data (no sharpness
    probe, for instance) is not drawn, and the report names it.
    """
    folder = load_run_folder(run_dir)
    figure_dir = folder.path / "figures"
    figure_dir.mkdir(exist_ok=True)

    figures, left_out = render_figures(folder)
    claims = evaluate_claims(folder)
    blocks = build_document(folder, claims, figures, left_out)
    title = report_title(folder.summary)

    written = [write_atomic(figure_dir / figure.name, figure.png) for figure in figures]
    written.append(write_atomic(folder.path / "report.md", to_markdown(blocks).encode("utf-8")))
    written.append(write_atomic(folder.path / "report.html", to_html(blocks, title).encode("utf-8")))
    logger.info("wrote the report of %s: %d figure(s), %d claim(s)", folder.path, len(figures), len(claims))
    return written


def plot_schedules(schedules: Mapping[str, dl.Schedule], horizon: int, out: Path) -> Path:
    """Draw ``lr(t)`` of each named schedule for ``t = 0 .. horizon - 1`` into a PNG file.

    ``out`` must end in ``.png``; missing parent folders are created. Each
    curve is a step function with one step per update. The y axis is
    logarithmic when every LR is positive and linear otherwise.
    """
    if not isinstance(schedules, Mapping):
        raise TypeError(f"schedules must be a dict of name -> Schedule, got {type(schedules).__name__}")
    if not schedules:
        raise ValueError("schedules must name at least one schedule, got an empty dict")
    for name, schedule in schedules.items():
        if not isinstance(schedule, dl.Schedule):
            raise TypeError(
                f"schedules[{name!r}] must be a decaylab Schedule, got {type(schedule).__name__}"
            )
    if isinstance(horizon, bool) or not isinstance(horizon, int):
        raise TypeError(f"horizon must be an int (number of updates), got {type(horizon).__name__}")
    if horizon < 2:
        raise ValueError(f"horizon must be at least 2 updates to draw a curve, got {horizon}")
    if not isinstance(out, (str, Path)):
        raise TypeError(f"out must be a str or pathlib.Path, got {type(out).__name__}")
    out = Path(out)
    if out.suffix.lower() != ".png":
        raise ValueError(f"out must name a .png file, got {str(out)!r}")

    out.parent.mkdir(parents=True, exist_ok=True)
    return write_atomic(out, figure_png(draw_schedules(schedules, horizon)))
