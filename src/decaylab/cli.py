"""The ``decaylab`` command: ``compare``, ``plot`` and ``match``.

Exit status: 0 when done, 2 for bad input (a one-line message on stderr and
no run folder written), 130 when interrupted by Ctrl-C (SIGINT), 1 for any
other failure.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import shlex
import sys
import time
from pathlib import Path
from typing import Any, NoReturn, Sequence

__all__ = ["main"]

logger = logging.getLogger(__name__)

EXIT_OK, EXIT_FAILURE, EXIT_BAD_INPUT = 0, 1, 2
# 128 + SIGINT, the status a shell reports for a command stopped by Ctrl-C.
EXIT_INTERRUPTED = 130


class _BadInput(Exception):
    """Bad input found by the CLI itself; the message is shown as is."""


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line on stderr and exit status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    """Build the ``decaylab`` argument parser with its three subcommands."""
    from decaylab.lab.config import OPTIONS

    parser = _Parser(prog="decaylab", description="Learning-rate decay schedules and their lab.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    compare = commands.add_parser(
        "compare",
        help="train one model under several schedules and seeds, then report",
        description="Train the same model on the same data under a step schedule and its "
        "matched exponential twins (or your --schedule specs), over several seeds, with "
        "displacement and sharpness monitors on; write a run folder with a report.",
    )
    for option in OPTIONS:
        extra: dict[str, Any] = {}
        if option.key == "schedule":
            extra["action"] = "append"
        elif option.metavar == "on|off":
            extra.update(nargs="?", const="on")
        compare.add_argument(option.flag, dest=option.key, metavar=option.metavar,
                             help=option.help, default=argparse.SUPPRESS, **extra)
    compare.add_argument("--config", metavar="FILE.toml", help="read options from a flat TOML "
                         "file (same keys, dashes or underscores); flags override it")
    compare.add_argument("--resume", action="store_true", help="continue the run folder of "
                         "--out DIR, keeping its finished runs: 'decaylab compare --resume --out "
                         "DIR' reads every other option from DIR/config.toml; an option given "
                         "again must equal the stored value, except --report and --tensorboard")
    compare.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS,
                         help="log progress details")

    plot = commands.add_parser("plot", help="plot schedules over a horizon to a PNG file")
    plot.add_argument("specs", nargs="+", metavar="SPEC", help="schedule spec, e.g. "
                      "'step(initial_lr=0.1, gamma=0.5, step_size=30)'")
    plot.add_argument("--horizon", type=int, required=True, metavar="N",
                      help="number of updates to plot, t = 0..N-1 (steps)")
    plot.add_argument("--out", required=True, metavar="FILE.png", help="image file to write")

    match = commands.add_parser("match", help="print the exponential twin of a step schedule")
    match.add_argument("spec", metavar="SPEC", help="step schedule spec, e.g. "
                       "'step(initial_lr=0.1, gamma=0.5, step_size=30)'")
    match.add_argument("--by", required=True, choices=("half-life", "final-lr", "area"),
                       help="what the twin keeps equal: the decay per step_size, the LR at "
                       "t = horizon, or the sum of the LR over t = 0..horizon-1")
    match.add_argument("--horizon", type=int, metavar="N", help="length of the run (steps); "
                       "needed for final-lr and area, and for the integrated-LR comparison")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``decaylab`` command line; return the exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:
        return exit_.code if isinstance(exit_.code, int) else EXIT_BAD_INPUT

    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    command = {"compare": _compare, "plot": _plot, "match": _match}[args.command]
    try:
        return command(args)
    except KeyboardInterrupt:
        print("decaylab: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except (_BadInput, ValueError, TypeError) as error:
        _fail(error)
        return EXIT_BAD_INPUT
    except Exception as error:  # noqa: BLE001 - the command line shows one line, not a traceback
        logger.debug("command failed", exc_info=True)
        _fail(error)
        return EXIT_FAILURE


def _fail(error: BaseException | str) -> None:
    text = " ".join(str(error).split())
    print(f"decaylab: error: {text}", file=sys.stderr)


def _compare(args: argparse.Namespace) -> int:
    from decaylab.lab.compare import plan_comparison, prepare_out_dir, run_comparison

    config = _resolve_config(args)
    out_dir = Path(config.out) if config.out else _default_out_dir()
    config = dataclasses.replace(config, out=str(out_dir))

    plan = plan_comparison(config)
    prepare_out_dir(out_dir, config, resume=args.resume)
    # The stored config.toml supplies every other option on resume.
    resume_command = f"decaylab compare --resume --out {shlex.quote(str(out_dir))}"

    try:
        from tqdm.contrib.logging import logging_redirect_tqdm

        with logging_redirect_tqdm():
            summary = run_comparison(plan, out_dir)
        final_path = _write_report(out_dir) if config.report else summary
    except KeyboardInterrupt:
        from decaylab.lab.store import finished_run_ids

        finished = len(finished_run_ids(out_dir / "runs"))
        total = len(list(plan.runs()))
        print(f"decaylab: comparison interrupted; {finished} of {total} runs finished and are "
              f"kept in {out_dir}; continue with: {resume_command}", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as error:  # any failure after the folder exists is exit status 1
        logger.debug("comparison failed", exc_info=True)
        # An OSError of a write call carries no file name, so name the folder.
        if isinstance(error, OSError) and not error.filename:
            _fail(f"{error} (in the run folder {out_dir})")
        else:
            _fail(error)
        print(f"decaylab: continue with: {resume_command}", file=sys.stderr)
        return EXIT_FAILURE
    print(final_path)
    return EXIT_OK


def _resolve_config(args: argparse.Namespace) -> Any:
    """Merge the options: the stored config.toml on resume, then --config, then flags."""
    from decaylab.lab.config import OPTIONS, config_from_mapping

    values: dict[str, Any] = {}
    if args.config:
        values = _read_options_file(args.config)
    for option in OPTIONS:
        if hasattr(args, option.key):
            values[option.key] = getattr(args, option.key)

    if args.resume:
        if not values.get("out"):
            raise _BadInput("--resume needs --out DIR, the run folder to continue")
        if not Path(values["out"]).is_dir():
            raise _BadInput(
                f"nothing to resume: {values['out']} does not exist; check the path, or drop "
                "--resume to start a new comparison there"
            )
        stored_path = Path(values["out"]) / "config.toml"
        if stored_path.is_file():
            values = {**_read_options_file(stored_path), **values}
    return config_from_mapping(values, source="the command line and config files")


def _read_options_file(path: str | Path) -> dict[str, Any]:
    from decaylab.lab.config import config_from_mapping, normalise_key, read_config_file

    file_values = read_config_file(path)
    config_from_mapping(file_values, source=str(path))
    return {normalise_key(key): value for key, value in file_values.items()}


def _default_out_dir() -> Path:
    base = Path.cwd() / "decaylab-runs" / time.strftime("compare-%Y%m%d-%H%M%S")
    candidate, number = base, 2
    while candidate.exists():
        candidate = base.with_name(f"{base.name}-{number}")
        number += 1
    return candidate


def _write_report(out_dir: Path) -> Path:
    from decaylab.report import write_report

    paths = write_report(out_dir)
    reports = [path for path in paths if path.suffix in (".html", ".md")]
    return reports[0] if reports else out_dir / "report.md"


def _plot(args: argparse.Namespace) -> int:
    import decaylab as dl

    if args.horizon < 2:
        raise _BadInput(f"--horizon must be an integer >= 2 (updates to draw); got {args.horizon}")
    out = Path(args.out)
    if not out.parent.is_dir():
        raise _BadInput(f"--out {out}: folder {out.parent} does not exist; create it first")
    schedules = {text: dl.parse_schedule(text) for text in args.specs}

    from decaylab.report import plot_schedules

    print(plot_schedules(schedules, args.horizon, out))
    return EXIT_OK


def _match(args: argparse.Namespace) -> int:
    import decaylab as dl

    step = dl.parse_schedule(args.spec)
    if not isinstance(step, (dl.StepDecay, dl.MultiStepDecay)):
        raise _BadInput(f"match needs a step(...) or multistep(...) spec; got {step.to_spec()}")
    if args.by != "half-life" and args.horizon is None:
        raise _BadInput(f"--by {args.by} needs --horizon N (steps)")
    if args.horizon is not None and args.horizon < 1:
        raise _BadInput(f"--horizon must be an integer >= 1; got {args.horizon}")

    if args.by == "half-life":
        twin = dl.match_half_life(step)
    elif args.by == "final-lr":
        twin = dl.match_final_lr(step, args.horizon)
    else:
        twin = dl.match_area(step, args.horizon)
    print(twin.to_spec())

    if args.horizon is None:
        print("integrated LR: pass --horizon N to compare the two over t = 0..N-1")
        return EXIT_OK
    result = dl.compare_schedules(step, twin, args.horizon)
    print(
        f"integrated LR over t = 0..{args.horizon - 1}: step {result['integrated_lr_a']:.6g}, "
        f"twin {result['integrated_lr_b']:.6g}, step/twin {result['area_ratio']:.6g}"
    )
    print(
        f"LR ratio step/twin per step: min {result['min_ratio']:.6g}, "
        f"max {result['max_ratio']:.6g}, step above twin on "
        f"{100 * result['fraction_a_greater']:.1f}% of steps"
    )
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
