"""Write ``docs/benchmarks.md`` from the JSON files in ``benchmarks/results``.

Run: ``.venv/bin/python -m benchmarks.render`` after re-running one or more
benchmarks; every figure on the page comes from those files.
"""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks._harness import RESULTS_DIR

PAGE = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"
ORDER = ("scheduler_step", "vectorised", "eigenvalue", "hvp_cost", "training_overhead",
         "compare_throughput")


def spread(stats: dict[str, Any], formatter: Callable[[float], str]) -> str:
    """Format a stats dict as ``median (min-max)``."""
    return f"{formatter(stats['median'])} ({formatter(stats['min'])}–{formatter(stats['max'])})"


def ns(value: float) -> str:
    """Format nanoseconds."""
    return f"{value:,.0f} ns"


def seconds(value: float) -> str:
    """Format seconds with a unit that suits the size."""
    if value < 1e-3:
        return f"{value * 1e6:.0f} µs"
    if value < 1.0:
        return f"{value * 1e3:.1f} ms"
    return f"{value:.2f} s"


def number(value: Any) -> str:
    """Format a measured number compactly."""
    if value is None:
        return "–"
    if isinstance(value, float) and math.isnan(value):
        return "n/a"
    if isinstance(value, int):
        return str(value)
    if abs(value) >= 100 or value == int(value):
        return f"{value:,.0f}"
    return f"{value:.3g}"


def anchor(title: str) -> str:
    """Return the anchor that GitHub-style Markdown gives a heading."""
    slug = "".join(char for char in title.lower() if char.isalnum() or char in " -_")
    return slug.replace(" ", "-")


def run_header(data: dict[str, Any]) -> list[str]:
    """Describe one result file: command, date, threads, load and duration."""
    start, end = data["load_average_start"], data["load_average_end"]
    return [
        f"Command: `{data['command']}`. Measured {data['started']}, torch threads "
        f"{data['machine']['torch_threads']}, 1-minute load average {start[0]} at the start and "
        f"{end[0]} at the end, {data['duration_s']:.0f} s in all.",
        "",
    ]


def table(header: list[str], rows: list[list[str]]) -> list[str]:
    """Return a Markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines + [""]


def verdict(record: dict[str, Any]) -> str:
    """Return "met" or "not met", with the reason when there is one."""
    word = "**met**" if record["met"] else "**not met**"
    return f"{word}: {record['reason']}" if record.get("reason") else word


def goals_table(results: dict[str, dict[str, Any]]) -> list[str]:
    """Tabulate every goal of every benchmark."""
    rows = []
    for name in ORDER:
        for record in results.get(name, {}).get("goals", []):
            bound = ">= " if record.get("lower_bound") else ""
            if record["unit"] == "fraction":
                measured = f"{record['measured'] * 100:+.1f} %"
                target = f"{record['comparison']} {record['limit'] * 100:g} %"
            else:
                measured = f"{bound}{number(record['measured'])} {record['unit']}"
                target = f"{record['comparison']} {number(record['limit'])}"
            rows.append([f"[{name}](#{anchor(RENDERERS[name][0])})", record["goal"], measured,
                         target, verdict(record)])
    return table(["benchmark", "goal", "measured", "target", "verdict"], rows)


def scheduler_step(data: dict[str, Any]) -> list[str]:
    """Render the scheduler step benchmark."""
    settings = data["settings"]
    lines = [
        f"`Scheduler.step()` on SGD with {settings['param_groups']} param groups, against "
        "torch's scheduler with the same LRs and against a hand-written floor (the closed form "
        "and four dict writes, no scheduler object). Per call, "
        f"{settings['calls_per_round']:,} calls per round, {settings['rounds']} interleaved "
        "rounds, median (min–max). Every figure includes the loop's own cost "
        "(`empty call`).",
        "",
    ]
    rows = []
    for kind, entry in data["results"].items():
        calls = entry["ns_per_call"]
        rows.append([
            kind, f"`{entry['peer'].rsplit('.', 1)[-1]}`",
            spread(calls["decaylab"], ns), spread(calls["torch"], ns), spread(calls["floor"], ns),
            spread(calls["empty_call"], ns), f"{entry['ratio_to_torch']:.2f}x",
            f"{entry['ratio_to_floor']:.1f}x", f"{entry['max_relative_lr_difference']:.1e}",
        ])
    lines += table(["schedule", "peer", "decaylab", "torch", "floor", "empty call",
                    "decaylab / torch", "decaylab / floor", "max LR difference"], rows)
    lines.append("The last column is the largest relative difference between the LRs the two "
                 "schedulers wrote over the first 5,000 steps.")
    return lines + [""]


def vectorised(data: dict[str, Any]) -> list[str]:
    """Render the vectorised evaluation benchmark."""
    settings = data["settings"]
    lines = [
        f"`schedule(t)` for a float64 array of {settings['horizon']:,} steps "
        f"(median of {settings['rounds_decaylab']} calls, min–max), against stepping torch's "
        "scheduler through the whole horizon once and reading the LR after each step. Torch "
        "was stepped through every step; nothing is extrapolated.",
        "",
    ]
    rows = []
    for kind, entry in data["results"].items():
        rows.append([
            kind, f"`{entry['schedule']}`", spread(entry["decaylab_s"], seconds),
            seconds(entry["torch_s"]), f"{entry['speedup']:,.0f}x",
            f"{entry['max_relative_difference']:.1e} at step {entry['at_max_difference_step']:,}",
        ])
    lines += table(["schedule", "decaylab spec", "decaylab", "torch (one pass)", "speed-up",
                    "max relative LR difference"], rows)
    lines.append("The LR difference column compares decaylab's closed form with the LRs torch "
                 "wrote; for `ExponentialLR` it is the drift of torch's repeated multiplication.")
    return lines + [""]


def eigenvalue(data: dict[str, Any]) -> list[str]:
    """Render the top-eigenvalue benchmark."""
    problem = data["problem"]
    results = data["results"]
    seeds = len(next(iter(results["sweeps"].values())))
    lines = [
        f"Lab default model ({problem['parameters']:,} parameters) after "
        f"{problem['train_updates']} SGD updates at LR 0.8, Hessian of the mean loss on the "
        f"{problem['probe_examples']:,}-example probe subset, in {problem['dtype']}. Dense "
        f"ground truth: λ1 = {problem['lambda_1']:.10g}, λ2 = {problem['lambda_2']:.6g} "
        f"(λ2/λ1 = {problem['gap_ratio_lambda2_over_lambda1']:.3f}), λmin = "
        f"{problem['lambda_min']:.4g}. {seeds} seeds (start vectors); figures are medians "
        "over seeds with min–max. Warm starts begin from the top eigenvector of the model "
        f"{problem['warm_start_from_updates_earlier']} updates earlier.",
        "",
        "HVPs to reach each true relative error. \"own tol\" is decaylab stopping on its "
        "residual bound with `tol` equal to the target. The swept columns give the fewest "
        "HVPs among all swept `tol` (and `ncv`) settings whose result was within the target. "
        "\"oracle\" is the first product count after which the estimate stays within the "
        "target, which is the best any stopping rule could do.",
        "",
    ]
    columns = [
        ("decaylab cold, own tol", "decaylab_cold_own_tol"),
        ("decaylab warm, own tol", "decaylab_warm_own_tol"),
        ("decaylab cold, best tol", "decaylab_cold"),
        ("PyHessian, best tol", "pyhessian"),
        ("eigsh ncv=20", "eigsh_ncv20"),
        ("eigsh ncv=4", "eigsh_ncv4"),
        ("eigsh ncv=20, warm v0", "eigsh_ncv20_warm"),
    ]
    rows = []
    for target, entry in results["by_target"].items():
        row = [target]
        for _, key in columns:
            cell = entry[key]
            row.append(spread(cell["hvps"], number) if cell.get("hvps") else f"not reached ({cell['reached_in']})")
        for key in ("decaylab_cold_oracle_hvps", "decaylab_warm_oracle_hvps", "pyhessian_oracle_hvps"):
            counts = [count for count in entry[key] if count is not None]
            missing = len(entry[key]) - len(counts)
            text = f"{sorted(counts)[len(counts) // 2]}" if counts else "never"
            row.append(text + (f" ({missing} seeds never)" if counts and missing else ""))
        rows.append(row)
    header = ["true error"] + [label for label, _ in columns] + [
        "oracle decaylab cold", "oracle decaylab warm", "oracle PyHessian"]
    lines += table(header, rows)

    lines += ["Wall time of one call at the setting counted above, median over seeds "
              "(operator construction included):", ""]
    rows = []
    for target, entry in results["by_target"].items():
        row = [target]
        for _, key in columns:
            cell = entry[key]
            row.append(spread(cell["seconds"], seconds) if cell.get("hvps") else "–")
        rows.append(row)
    lines += table(["true error"] + [label for label, _ in columns], rows)

    floor = problem["pyhessian_lowest_error"]
    lines += [
        f"PyHessian's power iteration, run for {problem['pyhessian_max_iter']} products with "
        f"`tol=0`, got no closer than a relative error of {floor['median']:.2g} "
        f"({floor['min']:.2g}–{floor['max']:.2g} over seeds). It normalises with "
        "`v / (||v|| + 1e-6)`, so its vectors are slightly short and the Rayleigh quotient "
        "it returns is biased low by about that much. Power iteration converges at the rate "
        "λ2/λ1 per product, which is slow for this spectrum.",
        "",
        "Warm starts from earlier models, decaylab with `tol=1e-3`:",
        "",
    ]
    rows = [[str(gap["updates_earlier"]), f"{gap['overlap']:.3f}", f"{gap['rayleigh_quotient_error']:.2g}",
             str(gap["first_lasting_hvps_1e-3"]), str(gap["hvps_tol_1e-3"]), f"{gap['error_tol_1e-3']:.2g}"]
            for gap in results["warm_gaps"]]
    lines += table(["updates earlier", "overlap with current eigenvector",
                    "error after 1 HVP", "oracle HVPs to 1e-3", "HVPs with tol=1e-3",
                    "true error then"], rows)
    return lines


def hvp_cost(data: dict[str, Any]) -> list[str]:
    """Render the HVP cost benchmark."""
    settings = data["settings"]
    lines = [
        f"One HVP on the {settings['examples']:,}-example probe batch "
        f"({settings['parameters']:,} parameters, {settings['dtype']}), in units of one "
        f"gradient on the same batch. {settings['products_per_round']} products per round, "
        f"{settings['rounds']} interleaved rounds, a fresh operator per round; median "
        "(min–max). \"build\" is constructing the `HessianOperator` (for `reuse_graph=True` "
        "a gradient with `create_graph=True`), paid once per probe.",
        "",
    ]
    rows = []
    for label, entry in data["results"].items():
        rows.append([label, spread({k: entry["ns"][k] / 1e3 for k in ("median", "min", "max")},
                                   lambda v: f"{v:,.0f} µs"), f"{entry['gradients']:.2f}x"])
    lines += table(["variant", "time per call", "in gradients"], rows)
    lines.append(f"Fastest product: `{data['best']}`. `pyhessian` is PyHessian's "
                 "`hessian_vector_product` on the graph its constructor builds.")
    return lines + [""]


def training_overhead(data: dict[str, Any]) -> list[str]:
    """Render the training overhead benchmark."""
    settings = data["settings"]
    lines = [
        f"{settings['updates']} updates of the lab's default training (batch "
        f"{settings['batch_size']}, LR {settings['lr']}, torch `StepLR`) per round, "
        f"{settings['rounds']} interleaved rounds, time per update, median (min–max). "
        f"The probe uses the {settings['probe_examples']:,}-example probe batch, warm-started "
        "from its previous eigenvector, `tol=1e-3`.",
        "",
    ]
    rows = []
    for label, entry in data["results"].items():
        hvps = entry["mean_probe_hvps"]
        rows.append([label, spread({k: entry["s_per_update"][k] for k in ("median", "min", "max")}, seconds),
                     f"{entry['overhead'] * 100:+.1f} %", "–" if hvps is None else f"{hvps:.1f}",
                     str(round(entry["probes_per_run"]))])
    lines += table(["loop", "time per update", "overhead vs bare", "mean HVPs per probe",
                    "probes per run"], rows)
    return lines


def compare_throughput(data: dict[str, Any]) -> list[str]:
    """Render the compare throughput benchmark."""
    settings, results = data["settings"], data["results"]
    grid = settings["grid"]
    lines = [
        f"The default grid with fewer seeds: {grid['schedules']} schedules × {grid['seeds']} "
        f"seed, {grid['epochs']} epochs, torch threads {settings['threads']}, "
        f"{settings['rounds']} interleaved rounds, median (min–max). The lab runs "
        "`decaylab.lab.compare` (run folder, CSV files, `summary.json`, no report); the bare "
        "loop trains the same runs in plain PyTorch with per-epoch evaluation and no files.",
        "",
    ]
    rows = [[label, spread(entry["s"], seconds), f"{entry['ratio_to_bare']:.2f}x"]
            for label, entry in results["grid"].items()]
    lines += table(["contender", "wall time", "ratio to bare loop"], rows)

    lines += ["Scaling with the number of runs (one schedule, seeds = runs, probe on):", ""]
    rows = [[runs, spread(entry["lab_s"], seconds), seconds(entry["lab_s_per_run"]),
             spread(entry["bare_s"], seconds), f"{entry['lab_s']['median'] / entry['bare_s']['median']:.2f}x"]
            for runs, entry in results["scaling"].items()]
    lines += table(["runs", "lab", "lab per run", "bare loop", "ratio"], rows)

    full = results["full_default"]
    lines += [
        f"The full default command, once: `{full['command']}` ({full['runs']} runs, report "
        f"included, a new process) took {seconds(full['cli_s'])}; the bare loop over the "
        f"same {full['runs']} runs, also as a new process, took "
        f"{seconds(full['bare_process_s'])} ({full['ratio']:.2f}x). Load average "
        f"{full['load_average'][0][0]} before, {full['load_average'][1][0]} after.",
        "",
    ]
    return lines


RENDERERS: dict[str, tuple[str, Callable[[dict[str, Any]], list[str]]]] = {
    "scheduler_step": ("Scheduler step cost", scheduler_step),
    "vectorised": ("Vectorised evaluation of 10^7 steps", vectorised),
    "eigenvalue": ("Top Hessian eigenvalue", eigenvalue),
    "hvp_cost": ("HVP cost", hvp_cost),
    "training_overhead": ("Training overhead of the monitors", training_overhead),
    "compare_throughput": ("`decaylab compare` throughput", compare_throughput),
}


def render(results: dict[str, dict[str, Any]]) -> str:
    """Return the whole page for the loaded results."""
    first = next(iter(results.values()))
    machine = first["machine"]
    lines = [
        "# Benchmarks",
        "",
        "decaylab measured side by side with what users would otherwise use: PyTorch's "
        "schedulers, PyHessian 0.1, scipy's `eigsh` and a bare PyTorch training loop. Each "
        "figure comes from one run in which decaylab and its peer were timed in interleaved "
        "rounds, so load that drifts hits both.",
        "",
        f"**Machine:** {machine['cpu_model']}, {machine['logical_cpus']} logical CPUs "
        f"(a 2-core machine shared with other jobs while these ran, so absolute times are "
        f"noisy; the ratios are the figures to read), Python {machine['python_version']}, "
        f"torch {machine['torch_version']}, numpy {machine['numpy_version']}, "
        f"torch threads {machine['torch_threads']}.",
        "",
        "Regenerate everything with `.venv/bin/python -m benchmarks.run_all` (about 10 "
        "minutes), or one benchmark with the command under its heading followed by "
        "`.venv/bin/python -m benchmarks.render`. Raw results, with every sample and the "
        "load averages, are in `benchmarks/results/*.json`.",
        "",
        "Every benchmark fixes `torch.set_num_threads` (1 unless `--threads` says otherwise), "
        "because on a shared 2-core machine a second torch thread mostly waits for a core. "
        "Limits of these measurements: the eigenvalue benchmark runs in float64 only (the "
        "lab's probe runs in float32); torch is stepped through 10^7 steps once per schedule, "
        "not repeated; the full default `decaylab compare` is timed once.",
        "",
        "## Goals",
        "",
    ]
    lines += goals_table(results)
    for name in ORDER:
        if name not in results:
            continue
        title, renderer = RENDERERS[name]
        lines += [f"## {title}", ""]
        lines += run_header(results[name])
        lines += renderer(results[name])
    return "\n".join(lines).rstrip() + "\n"


def load_results(folder: Path) -> dict[str, dict[str, Any]]:
    """Read every known result file present in ``folder``."""
    results = {}
    for name in ORDER:
        path = folder / f"{name}.json"
        if path.is_file():
            results[name] = json.loads(path.read_text(encoding="utf-8"))
    return results


def main(argv: list[str] | None = None) -> Path:
    """Render the page; return its path."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, default=RESULTS_DIR, help="folder of result JSON files")
    parser.add_argument("--out", type=Path, default=PAGE, help="page to write")
    args = parser.parse_args(argv)
    results = load_results(args.results)
    if not results:
        raise SystemExit(f"no result files in {args.results}; run python -m benchmarks.run_all first")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(render(results), encoding="utf-8")
    return args.out


if __name__ == "__main__":
    main()
