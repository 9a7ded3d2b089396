"""write_report and plot_schedules: files written, PNGs, Markdown and self-contained HTML."""

from __future__ import annotations

import base64
import os
import re
import struct
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

import decaylab as dl
from decaylab.report import plot_schedules, write_report
from decaylab.report import render as render_module
from decaylab.report.figures import epoch_matrix
from decaylab.report.load import load_run_folder

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
VOID_TAGS = {"meta", "img", "br", "hr", "link", "input"}
FIGURE_NAMES = ["lr.png", "displacement.png", "sharpness.png", "sharpness_ratio.png",
                "loss.png", "accuracy.png", "final_sharpness_accuracy.png"]


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == PNG_SIGNATURE
    assert data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


class DocumentChecker(HTMLParser):
    """Collects tags, checks nesting of non-void elements, and gathers src/href values."""

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.links: list[str] = []
        self.tags: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.links.extend(value for name, value in attrs if name in ("src", "href") and value)
        if tag not in VOID_TAGS:
            self.stack.append(tag)

    def handle_endtag(self, tag):
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes {self.stack[-1:] or 'nothing'}")
        else:
            self.stack.pop()


@pytest.fixture(scope="module")
def report(tmp_path_factory, build_folder):
    root = build_folder(
        tmp_path_factory.mktemp("report") / "run",
        twins=("half-life", "final-lr", "area"),
        diverge={"exp-area-seed1": 150},
    )
    return root, write_report(root)


def test_report_files_written(report):
    root, written = report

    assert [p.name for p in written] == FIGURE_NAMES + ["report.md", "report.html"]
    for path in written:
        assert path.is_file()
        assert path.parent in (root, root / "figures")
    assert not [p for p in root.rglob("*.tmp")]


def test_figures_are_valid_pngs(report):
    root, _ = report

    for name in FIGURE_NAMES:
        data = (root / "figures" / name).read_bytes()
        width, height = png_size(data)
        assert width >= 600, name
        assert height >= 300, name
        assert len(data) > 15_000, name


def test_markdown_sections_and_links(report):
    root, _ = report
    text = (root / "report.md").read_text(encoding="utf-8")

    for heading in ("## Results", "## Diverged runs", "## Claims", "## Figures", "## Setup", "## Method"):
        assert heading in text
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
    assert links == [f"figures/{name}" for name in FIGURE_NAMES]
    for link in links:
        assert (root / link).is_file()
    assert "`exp-area-seed1` (schedule `exp-area`, seed 1): diverged at update 150" in text
    assert "| `exp-area` |" in text
    assert "1 of 3 |" in text
    assert "**Verdict: supported.**" in text
    assert "Decision rule:" in text
    assert "2.13.0+cpu, 2 thread(s)" in text
    assert 'dataset = "digits"' in text


def test_method_note_states_limits(report):
    root, _ = report
    text = (root / "report.md").read_text(encoding="utf-8")
    method = text.split("## Method", 1)[1]

    assert "reports whether the seeds agree, not statistical significance" in method
    assert "the smallest one-sided sign-test p is 2^-n (0.25 for 2 seeds, 0.125 for 3)" in method
    assert "more than 10 % (the LR margin)" in method
    assert "paired t = nan" not in text


def test_markdown_table_values(report):
    root, _ = report
    text = (root / "report.md").read_text(encoding="utf-8")
    row = next(line for line in text.splitlines() if line.startswith("| `step` |"))

    # Final accuracies 0.90, 0.91, 0.92: mean 0.91, sample std 0.01.
    assert "0.91 ± 0.01 (n=3)" in row
    assert row.count("|") == 8


def test_html_self_contained(report):
    root, _ = report
    text = (root / "report.html").read_text(encoding="utf-8")
    checker = DocumentChecker()
    checker.feed(text)
    checker.close()

    assert text.startswith("<!DOCTYPE html>")
    assert checker.errors == []
    assert checker.stack == []
    assert checker.tags.count("img") == len(FIGURE_NAMES)
    assert "link" not in checker.tags
    assert "script" not in checker.tags
    for link in checker.links:
        assert link.startswith("data:image/png;base64,")
    assert not re.search(r"(src|href)\s*=\s*[\"']?(https?:)?//", text)
    assert "url(" not in text


def test_html_images_decode(report):
    root, _ = report
    text = (root / "report.html").read_text(encoding="utf-8")
    sources = re.findall(r'src="data:image/png;base64,([^"]+)"', text)

    assert len(sources) == len(FIGURE_NAMES)
    for source, name in zip(sources, FIGURE_NAMES):
        assert base64.b64decode(source) == (root / "figures" / name).read_bytes()


def test_html_matches_markdown_claims(report):
    root, _ = report
    markdown = (root / "report.md").read_text(encoding="utf-8")
    text = (root / "report.html").read_text(encoding="utf-8")

    headings = re.findall(r"^### (.+)$", markdown, flags=re.M)
    assert len(headings) >= 10
    assert text.count('<span class="verdict') == len(headings)
    assert text.count("<h3>") == len(headings)


def test_report_without_probes(make_folder):
    root = make_folder(seeds=2, probe_every=None)

    written = write_report(root)

    names = [p.name for p in written]
    assert "sharpness.png" not in names
    assert "sharpness_ratio.png" not in names
    assert "final_sharpness_accuracy.png" not in names
    text = (root / "report.md").read_text(encoding="utf-8")
    left_out = "`sharpness.png`, `sharpness_ratio.png`, `final_sharpness_accuracy.png`"
    assert f"Not drawn for lack of data: {left_out}." in text
    assert "no run recorded a sharpness probe" in text
    assert "| sharpness probe | off |" in text


def test_report_one_seed(make_folder):
    root = make_folder(seeds=1)

    write_report(root)

    text = (root / "report.md").read_text(encoding="utf-8")
    assert "**Verdict: inconclusive.** only 1 seed(s) with a finite value" in text
    assert "± 0 (n=1)" in text


def test_report_validates_before_writing(make_folder):
    root = make_folder(seeds=1)
    path = root / "runs" / "exp-half-life-seed0" / "steps.csv"
    path.write_text(path.read_text(encoding="utf-8").replace("grad_norm", "gn", 1), encoding="utf-8")

    with pytest.raises(ValueError, match="grad_norm"):
        write_report(root)
    assert not (root / "report.md").exists()
    assert not (root / "figures").exists()


def test_report_replaces_old_files(make_folder):
    root = make_folder(seeds=1, twins=())
    (root / "report.md").write_text("old", encoding="utf-8")

    write_report(root)
    write_report(root)

    assert (root / "report.md").read_text(encoding="utf-8").startswith("# decaylab comparison")
    assert sorted(os.listdir(root)) == ["config.toml", "figures", "report.html", "report.md",
                                        "runs", "summary.json"]


def test_atomic_write_keeps_old_on_failure(tmp_path, monkeypatch):
    target = tmp_path / "report.md"
    target.write_text("old", encoding="utf-8")

    def failing_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(render_module.os, "replace", failing_replace)
    with pytest.raises(OSError, match="disk full"):
        render_module.write_atomic(target, b"new")

    assert target.read_text(encoding="utf-8") == "old"
    assert os.listdir(tmp_path) == ["report.md"]


def test_plot_schedules_writes_png(tmp_path):
    step = dl.StepDecay(initial_lr=0.1, gamma=0.5, step_size=30)
    schedules = {"step": step, "half-life": dl.match_half_life(step),
                 "warm": dl.Warmup(step, steps=10)}

    out = plot_schedules(schedules, 120, tmp_path / "plots" / "lr.png")

    assert out == tmp_path / "plots" / "lr.png"
    data = out.read_bytes()
    assert png_size(data)[0] >= 600
    assert len(data) > 10_000


@pytest.mark.parametrize(
    ("schedules", "horizon", "out", "error", "message"),
    [
        ({}, 100, "lr.png", ValueError, "at least one schedule, got an empty dict"),
        ({"x": lambda t: 0.1}, 100, "lr.png", TypeError, r"schedules\['x'\] must be a decaylab Schedule"),
        (None, 100, "lr.png", TypeError, "must be a dict of name -> Schedule, got NoneType"),
        ("step", 100, "lr.png", TypeError, "must be a dict of name -> Schedule, got str"),
        ("ok", 1, "lr.png", ValueError, "at least 2 updates to draw a curve, got 1"),
        ("ok", True, "lr.png", TypeError, "horizon must be an int"),
        ("ok", 10.0, "lr.png", TypeError, "horizon must be an int"),
        ("ok", 100, "lr.svg", ValueError, "must name a .png file"),
        ("ok", 100, 7, TypeError, "out must be a str or pathlib.Path"),
    ],
)
def test_plot_schedules_bad_input(tmp_path, schedules, horizon, out, error, message):
    if schedules == "ok":
        schedules = {"step": dl.StepDecay(initial_lr=0.1, gamma=0.5, step_size=30)}
    target = tmp_path / out if isinstance(out, str) else out

    with pytest.raises(error, match=message):
        plot_schedules(schedules, horizon, target)
    assert list(tmp_path.iterdir()) == []


def test_write_report_missing_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="run folder not found"):
        write_report(tmp_path / "absent")


def test_write_report_accepts_str(make_folder):
    root = make_folder(seeds=1, twins=())

    written = write_report(str(root))

    assert Path(written[-1]) == root / "report.html"


def test_epoch_rows_from_zero(make_folder):
    root = make_folder(seeds=2, twins=())
    for seed in range(2):
        path = root / "runs" / f"step-seed{seed}" / "epochs.csv"
        lines = path.read_text(encoding="utf-8").splitlines()
        shifted = [lines[0]] + [f"{int(line.split(',')[0]) - 1}," + line.split(",", 1)[1] for line in lines[1:]]
        path.write_text("\n".join(shifted) + "\n", encoding="utf-8")

    epochs, matrix = epoch_matrix(load_run_folder(root).schedules[0], "test_accuracy")

    assert epochs.tolist() == [0, 1, 2, 3, 4, 5]
    assert matrix.shape == (2, 6)
    assert not np.isnan(matrix).any()


@pytest.mark.filterwarnings("error::RuntimeWarning")
def test_report_warmup_from_zero(make_folder):
    root = make_folder(seeds=2, warmup=20, twins=("half-life", "area"))

    written = write_report(root)

    assert [p.name for p in written][: len(FIGURE_NAMES)] == FIGURE_NAMES
    text = (root / "report.md").read_text(encoding="utf-8")
    assert "### (a) Step LR versus its half-life twin\n" in text
    assert "**Verdict: supported.** min step/twin LR ratio" in text
