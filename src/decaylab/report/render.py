"""Render the report as Markdown and as one self-contained HTML file.

The report is built once as a list of blocks (headings, paragraphs, tables,
lists, figures, code) and written in both formats from that list, so the two
files carry the same content. In running text, a span between backticks is
code. The HTML file embeds figures as base64 ``data:`` URIs and uses no
external stylesheet, script or font.
"""

from __future__ import annotations

import base64
import html
import math
import os
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Union

import numpy as np

from decaylab.report.claims import Claim
from decaylab.report.figures import FigureFile
from decaylab.report.final_claims import LR_MARGIN, percent
from decaylab.report.load import RunFolder
from decaylab.report.verdicts import DECISION_RULE, SKIPPED


@dataclass(frozen=True)
class Heading:
    level: int
    text: str


@dataclass(frozen=True)
class Paragraph:
    text: str


@dataclass(frozen=True)
class Bullets:
    items: tuple[str, ...]


@dataclass(frozen=True)
class Table:
    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]


@dataclass(frozen=True)
class Image:
    figure: FigureFile


@dataclass(frozen=True)
class Code:
    text: str


@dataclass(frozen=True)
class Verdict:
    verdict: str
    reason: str


Block = Union[Heading, Paragraph, Bullets, Table, Image, Code, Verdict]

TABLE_METRICS: tuple[tuple[str, str], ...] = (
    ("final_test_accuracy", "final test accuracy"),
    ("final_test_loss", "final test loss"),
    ("final_train_loss", "final train loss"),
    ("final_sharpness", "final sharpness"),
)


# -- content ---------------------------------------------------------------


def mean_std(values: Sequence[float]) -> tuple[float, float, int]:
    """Return mean, sample std (ddof=1, 0.0 for one value) and count of the finite values."""
    finite = np.asarray([v for v in values if math.isfinite(v)], dtype=np.float64)
    if finite.size == 0:
        return math.nan, math.nan, 0
    std = float(finite.std(ddof=1)) if finite.size > 1 else 0.0
    return float(finite.mean()), std, int(finite.size)


def results_table(folder: RunFolder) -> Table:
    """Build the results table: per schedule, mean ± std (n) of each final metric over
    finished runs, the integrated LR and the count of diverged runs."""
    header = ("schedule", *[label for _, label in TABLE_METRICS], "integrated LR", "diverged")
    rows = []
    for record in folder.schedules:
        cells = [f"`{record.name}`"]
        for key, _ in TABLE_METRICS:
            mean, std, n = mean_std([run.finals[key] for run in record.runs if not run.diverged])
            cells.append("n/a" if n == 0 else f"{mean:.4g} ± {std:.2g} (n={n})")
        cells.append(f"{record.integrated_lr:.6g}")
        cells.append(f"{record.diverged} of {len(record.runs)}")
        rows.append(tuple(cells))
    return Table(header, tuple(rows))


def setup_blocks(folder: RunFolder) -> list[Block]:
    summary = folder.summary
    every = summary.get("sharpness_every")
    rows = (
        ("dataset", str(summary["dataset"])),
        ("model", str(summary["model"])),
        ("optimizer", str(summary["optimizer"])),
        ("epochs", str(summary["epochs"])),
        ("seeds", str(summary["seeds"])),
        ("batch size", str(summary["batch_size"])),
        ("updates per epoch", str(summary["steps_per_epoch"])),
        ("horizon (updates per run)", str(summary["horizon"])),
        ("sharpness probe", "off" if not every else f"every {every} updates"),
        ("torch", f"{summary['torch_version']}, {summary['torch_threads']} thread(s)"),
        ("decaylab", str(summary.get("decaylab_version", "not recorded"))),
    )
    schedules = tuple((f"`{r.name}`", r.role, f"`{r.spec}`") for r in folder.schedules)
    return [
        Heading(2, "Setup"),
        Table(("setting", "value"), rows),
        Paragraph("Schedules, evaluated at update t (the number of updates already done):"),
        Table(("name", "role", "spec"), schedules),
        Paragraph("Resolved configuration (`config.toml`):"),
        Code(folder.config_text.rstrip("\n")),
    ]


def diverged_blocks(folder: RunFolder) -> list[Block]:
    items = tuple(
        f"`{run.run_id}` (schedule `{record.name}`, seed {run.seed}): diverged at update "
        f"{run.diverged_at_step}"
        for record in folder.schedules for run in record.runs if run.diverged
    )
    if not items:
        return [Heading(2, "Diverged runs"), Paragraph("No run diverged.")]
    return [Heading(2, "Diverged runs"), Bullets(items)]


def claim_blocks(claims: Sequence[Claim]) -> list[Block]:
    blocks: list[Block] = [Heading(2, "Claims")]
    for claim in claims:
        blocks.append(Heading(3, f"({claim.key.split(':')[0]}) {claim.title}"))
        blocks.append(Paragraph(claim.statement))
        blocks.append(Verdict(claim.verdict, claim.reason))
        if claim.evidence:
            blocks.append(Bullets(claim.evidence))
    return blocks


def method_blocks(folder: RunFolder) -> list[Block]:
    width = max(1, folder.horizon // 100)
    return [
        Heading(2, "Method"),
        Bullets((
            "Table: mean and sample standard deviation (ddof=1, 0 for one seed) over the "
            "finished runs of each schedule; n counts them. Diverged runs are left out of "
            "the statistics and counted in the last column.",
            "Figures: the mean over seeds with a band from the seeds' minimum to maximum. "
            f"m_t is smoothed with a centred moving average over {width} updates.",
            "(a) is computed from the schedules alone: `integrated_lr` sums lr(t) over "
            "t = 0..horizon-1, per full plateau [kT, (k+1)T) as a difference of two sums, "
            "compared with the closed-form factor to a relative tolerance of 1e-9. When both "
            "schedules share a warm-up, the plateaus are counted from its end.",
            "(b) uses the median of m_t in windows of a quarter of the gap between drops "
            "on each side of each drop of the step schedule, and in the first and last "
            "quarter of each plateau. The step run and the twin run of the same seed are "
            "compared through the log-ratios, averaged over drops or plateaus per seed.",
            "(c) uses the probe steps: per run, the fraction of probes with sharpness below "
            "the ceiling and the maximum of sharpness/ceiling. The rise after a drop is the "
            "mean probe sharpness in the half-gap after the drop minus the mean in the "
            "half-gap before it, averaged over drops per seed. The ceiling claim decides each "
            "schedule's per-run margins 1 - max(sharpness/ceiling) and is supported when every "
            "schedule's verdict is.",
            "(d) pairs finished runs of the step schedule and each twin by seed and takes "
            "the difference of the final value (step minus twin). Final sharpness is the last "
            "probe's value, measured after update s, the last row of steps.csv that contains it. "
            "The sharpness claim predicts that the schedule with the larger LR at update s ends "
            "flatter, because the ceiling falls as the LR grows. It predicts that direction only "
            f"when the larger LR exceeds the smaller by more than {percent(LR_MARGIN)} (the LR margin), "
            "and within the margin it predicts only a difference. The final-LR twin equals the step "
            "LR at the horizon, so at the last update it usually falls within the margin. The "
            "accuracy claim predicts no sign.",
            "Decision rule: " + DECISION_RULE,
            "A claim is skipped, with the reason stated, when the run folder lacks its "
            "inputs (no base step schedule, no twin, no sharpness probe, no LR drop).",
        )),
    ]


def report_title(summary: Mapping[str, Any]) -> str:
    return f"decaylab comparison: {summary['dataset']}, {summary['model']}, {summary['optimizer']}"


def build_document(
    folder: RunFolder, claims: Sequence[Claim], figures: Sequence[FigureFile], left_out: Sequence[str]
) -> list[Block]:
    """Assemble the report's blocks in reading order."""
    summary = folder.summary
    verdicts = [c.verdict for c in claims if c.verdict != SKIPPED]
    counts = ", ".join(f"{verdicts.count(v)} {v}" for v in dict.fromkeys(verdicts))
    blocks: list[Block] = [
        Heading(1, report_title(summary)),
        Paragraph(
            f"{len(folder.schedules)} schedule(s) x {summary['seeds']} seed(s), "
            f"{summary['epochs']} epochs of {summary['steps_per_epoch']} updates. "
            f"Claims: {counts or 'none evaluated'}; "
            f"{len(claims) - len(verdicts)} skipped."
        ),
        Heading(2, "Results"),
        results_table(folder),
        *diverged_blocks(folder),
        *claim_blocks(claims),
        Heading(2, "Figures"),
    ]
    blocks.extend(Image(figure) for figure in figures)
    if left_out:
        blocks.append(Paragraph("Not drawn for lack of data: " + ", ".join(f"`{n}`" for n in left_out) + "."))
    blocks.extend(setup_blocks(folder))
    blocks.extend(method_blocks(folder))
    return blocks


# -- Markdown --------------------------------------------------------------


def to_markdown(blocks: Sequence[Block], figure_dir: str = "figures") -> str:
    """Render ``blocks`` as Markdown with figures linked relative to the report."""
    parts = []
    for block in blocks:
        if isinstance(block, Heading):
            parts.append(f"{'#' * block.level} {block.text}")
        elif isinstance(block, Paragraph):
            parts.append(block.text)
        elif isinstance(block, Bullets):
            parts.append("\n".join(f"- {item}" for item in block.items))
        elif isinstance(block, Table):
            lines = [_md_row(block.header), "|" + "---|" * len(block.header)]
            lines.extend(_md_row(row) for row in block.rows)
            parts.append("\n".join(lines))
        elif isinstance(block, Image):
            parts.append(f"![{block.figure.caption}]({figure_dir}/{block.figure.name})\n\n"
                         f"*{block.figure.caption}*")
        elif isinstance(block, Code):
            fence = "````" if "```" in block.text else "```"
            parts.append(f"{fence}toml\n{block.text}\n{fence}")
        else:
            parts.append(f"**Verdict: {block.verdict}.** {block.reason}.")
    return "\n\n".join(parts) + "\n"


def _md_row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |"


# -- HTML ------------------------------------------------------------------

_STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
       line-height: 1.55; color: #1d232a; background: #fff; margin: 0; }
main { max-width: 62rem; margin: 0 auto; padding: 1.5rem 1.25rem 4rem; }
h1 { font-size: 1.7rem; margin-bottom: 0.4rem; }
h2 { font-size: 1.3rem; margin-top: 2.2rem; border-bottom: 1px solid #d5dbe1; }
h3 { font-size: 1.05rem; margin-top: 1.6rem; }
table { border-collapse: collapse; margin: 0.8rem 0; font-size: 0.92rem; }
th, td { border: 1px solid #d5dbe1; padding: 0.3rem 0.6rem; text-align: left; }
th { background: #f2f4f7; }
code, pre { font-family: ui-monospace, "SFMono-Regular", Menlo, Consolas, monospace;
            font-size: 0.88em; background: #f2f4f7; border-radius: 3px; }
code { padding: 0.05rem 0.25rem; }
pre { padding: 0.8rem; overflow-x: auto; }
figure { margin: 1.4rem 0; }
figure img { max-width: 100%; height: auto; border: 1px solid #e3e7eb; }
figcaption { font-size: 0.9rem; color: #4a5561; }
.verdict { font-weight: 600; padding: 0.1rem 0.45rem; border-radius: 3px; }
.supported { background: #dff3e4; color: #14532d; }
.not-supported { background: #fde2e1; color: #7f1d1d; }
.inconclusive { background: #fdf3d7; color: #6b4e00; }
.skipped { background: #e8ebef; color: #37414b; }
"""


def to_html(blocks: Sequence[Block], title: str) -> str:
    """Render ``blocks`` as one HTML document with figures embedded as data URIs."""
    body = []
    for block in blocks:
        if isinstance(block, Heading):
            body.append(f"<h{block.level}>{_inline(block.text)}</h{block.level}>")
        elif isinstance(block, Paragraph):
            body.append(f"<p>{_inline(block.text)}</p>")
        elif isinstance(block, Bullets):
            items = "".join(f"<li>{_inline(item)}</li>" for item in block.items)
            body.append(f"<ul>{items}</ul>")
        elif isinstance(block, Table):
            head = "".join(f"<th>{_inline(cell)}</th>" for cell in block.header)
            rows = "".join(
                "<tr>" + "".join(f"<td>{_inline(cell)}</td>" for cell in row) + "</tr>"
                for row in block.rows
            )
            body.append(f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>")
        elif isinstance(block, Image):
            data = base64.b64encode(block.figure.png).decode("ascii")
            caption = html.escape(block.figure.caption)
            body.append(
                f'<figure><img src="data:image/png;base64,{data}" alt="{caption}">'
                f"<figcaption>{caption}</figcaption></figure>"
            )
        elif isinstance(block, Code):
            body.append(f"<pre><code>{html.escape(block.text)}</code></pre>")
        else:
            css = block.verdict.replace(" ", "-")
            body.append(
                f'<p><span class="verdict {css}">{html.escape(block.verdict)}</span> '
                f"{_inline(block.reason)}.</p>"
            )
    return (
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{html.escape(title)}</title>\n<style>{_STYLE}</style>\n</head>\n"
        "<body>\n<main>\n" + "\n".join(body) + "\n</main>\n</body>\n</html>\n"
    )


def _inline(text: str) -> str:
    """Escape ``text`` for HTML and turn backtick spans into ``<code>`` elements."""
    pieces = text.split("`")
    if len(pieces) % 2 == 0:
        return html.escape(text)
    return "".join(
        f"<code>{html.escape(piece)}</code>" if i % 2 else html.escape(piece)
        for i, piece in enumerate(pieces)
    )


# -- atomic writes ---------------------------------------------------------


def write_atomic(path: Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` through a temporary file in the same folder and
    ``os.replace``, so a reader sees the old file or the new one, never a part.

    The file gets mode 0o644 (the temporary file would otherwise keep 0o600).
    """
    handle = tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp",
                                         delete=False)
    try:
        with handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(handle.name, 0o644)
        os.replace(handle.name, path)
    except BaseException:
        Path(handle.name).unlink(missing_ok=True)
        raise
    return path
