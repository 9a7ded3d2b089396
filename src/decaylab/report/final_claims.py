"""Claim (d): final sharpness and final test accuracy of the step schedule and a twin.

Both claims pair the finished runs of the two schedules by seed and decide
the per-seed differences ``step - twin`` by :func:`decide`.
"""

from __future__ import annotations

import math

import numpy as np

from decaylab.report.claims import Claim, paired_runs, skipped
from decaylab.report.load import RunRecord, ScheduleRecord
from decaylab.report.verdicts import SeedStatistic, decide

LR_MARGIN = 0.10
"""Smallest relative LR difference for which the final-sharpness claim predicts a direction.

The claim predicts which run ends flatter only when the larger of the two
LRs at the update of the final sharpness probe exceeds the smaller by more
than this fraction. The ceiling is inversely proportional to the LR, so a
1 % LR difference moves it by 1 %. That is well inside the seed-to-seed
spread of final sharpness, whose standard deviation was 5 to 6 % of the
mean for each schedule of the default ``decaylab compare`` run on digits
(3 seeds). Within the margin the claim predicts only a difference.
"""

_PROBE_RTOL = 1e-9


def final_probe_step(run: RunRecord) -> int | None:
    """Return the update after which ``run``'s final sharpness was measured.

    That is the last row of ``steps.csv`` whose sharpness equals the run's
    ``final_sharpness`` (relative tolerance 1e-9). Returns None when the final
    sharpness is not finite or no probe row contains that value.
    """
    sharpness = run.steps.get("sharpness")
    final = run.finals["final_sharpness"]
    if sharpness is None or not math.isfinite(final):
        return None
    matches = np.flatnonzero(np.isclose(sharpness, final, rtol=_PROBE_RTOL, atol=0.0))
    if matches.size == 0:
        return None
    return int(run.steps["step"][matches[-1]])


def lr_relative_difference(lr_a: float, lr_b: float) -> float:
    """Return how far the larger LR exceeds the smaller, as a fraction of the smaller.

    Two zero LRs give 0.0; one zero LR next to a positive one gives infinity.

    >>> round(lr_relative_difference(0.032, 0.03235), 4)
    0.0109
    """
    low, high = min(lr_a, lr_b), max(lr_a, lr_b)
    if high == 0.0:
        return 0.0
    if low == 0.0:
        return math.inf
    return high / low - 1.0


def percent(fraction: float) -> str:
    """Format a fraction as a percentage with 3 significant digits, e.g. ``"1.09 %"``."""
    if math.isinf(fraction):
        return "an unbounded factor (one LR is 0)"
    return f"{100.0 * fraction:.3g} %"


def claim_final_sharpness(base: ScheduleRecord, twin: ScheduleRecord, horizon: int) -> Claim:
    """Claim (d): the schedule with the larger LR at the final probe ends at lower sharpness.

    The final sharpness of a run is measured after update ``s``, the update
    of its last probe. The ceiling is inversely proportional to the LR, so
    the run whose update ``s`` used the larger LR is predicted to end
    flatter. When the two LRs at ``s`` differ by at most :data:`LR_MARGIN`
    (relative), no direction is predicted and the two-sided form of
    :func:`decide` applies to the differences ``step - twin``.
    """
    key = f"d:sharpness:{twin.name}"
    title = f"Final sharpness: `{base.name}` versus `{twin.name}`"
    finished = [(a, b) for _, a, b in paired_runs(base, twin) if not (a.diverged or b.diverged)]
    found = [final_probe_step(run) for pair in finished for run in pair]
    located = {step for step in found if step is not None}
    if len(located) > 1:
        statement = f"Final sharpness differs between `{base.name}` and `{twin.name}`."
        steps = ", ".join(str(s) for s in sorted(located))
        return skipped(key, title, statement,
                       f"the paired runs measured their final sharpness after different updates "
                       f"({steps}), so no single pair of LRs applies to every seed")

    last = horizon - 1
    probe_step = next(iter(located)) if located else last
    at_update = f"the last update t = {last}" if probe_step == last else f"update t = {probe_step}"
    step_lr = float(base.schedule(float(probe_step)))
    twin_lr = float(twin.schedule(float(probe_step)))
    gap = lr_relative_difference(step_lr, twin_lr)
    expected, prediction = _predict_direction(base.name, step_lr, twin.name, twin_lr, at_update)
    statement = f"Final sharpness differs between `{base.name}` and `{twin.name}`: {prediction}."

    differences = _paired_differences(base, twin, "final_sharpness")
    if not differences:
        return skipped(key, title, statement,
                       "no seed has a finished run with a final sharpness in both schedules")
    verdict, reason = decide(differences, expected)
    stat = SeedStatistic.of(differences)
    evidence = [
        f"LR at {at_update}, after which the final sharpness was measured: "
        f"step {step_lr:.4g}, twin {twin_lr:.4g} (the larger exceeds the smaller by {percent(gap)}; "
        f"a direction is predicted above {percent(LR_MARGIN)})",
        f"sharpness difference step - twin: {stat.describe(expected)}",
    ]
    if not located:
        evidence.append(
            f"no probe row of steps.csv contains the final sharpness, so the LRs at the last update "
            f"t = {last} are compared"
        )
    elif probe_step < last:
        evidence.append(
            f"the final sharpness is the probe after update t = {probe_step}, {last - probe_step} "
            f"update(s) before the last update t = {last}"
        )
    numbers = {"difference_mean": stat.mean, "lr_relative_difference": gap,
               "probe_step": float(probe_step)}
    return Claim(key, title, statement, verdict, reason, tuple(evidence), numbers)


def _predict_direction(
    step_name: str, step_lr: float, twin_name: str, twin_lr: float, at_update: str
) -> tuple[int, str]:
    """Return the expected sign of ``step - twin`` final sharpness and the prediction's text.

    The sign is 0 (a difference only) when the LRs differ by at most :data:`LR_MARGIN`.
    """
    gap = lr_relative_difference(step_lr, twin_lr)
    if gap == 0.0:
        return 0, f"the two LRs at {at_update} are equal, so no direction is predicted"
    if gap <= LR_MARGIN:
        return 0, (
            f"the two LRs at {at_update} differ by {percent(gap)}, within the "
            f"{percent(LR_MARGIN)} margin, so no direction is predicted, only a difference"
        )

    flatter = step_name if step_lr > twin_lr else twin_name
    expected = -1 if step_lr > twin_lr else +1
    return expected, f"`{flatter}` used the larger LR at {at_update}, so it should end flatter"


def claim_final_accuracy(base: ScheduleRecord, twin: ScheduleRecord) -> Claim:
    """Claim (d): the step schedule and ``twin`` differ in final test accuracy.

    No sign is predicted, so the two-sided form of :func:`decide` applies to
    the per-seed differences ``step - twin`` of finished runs.
    """
    title = f"Final test accuracy: `{base.name}` versus `{twin.name}`"
    statement = f"`{base.name}` and `{twin.name}` end at different test accuracy (paired by seed)."
    differences = _paired_differences(base, twin, "final_test_accuracy")
    if not differences:
        return skipped(f"d:accuracy:{twin.name}", title, statement,
                       "no seed has a finished run with a final test accuracy in both schedules")
    verdict, reason = decide(differences, 0)
    stat = SeedStatistic.of(differences)
    if stat.mean == 0.0:
        direction = f"on average `{base.name}` ends at the same accuracy"
    else:
        higher = "higher" if stat.mean > 0 else "lower"
        direction = f"on average `{base.name}` ends {higher} by {abs(stat.mean):.4g}"
    evidence = (f"accuracy difference step - twin: {stat.describe(0)}", direction)
    return Claim(f"d:accuracy:{twin.name}", title, statement, verdict, reason, evidence,
                 {"difference_mean": stat.mean})


def _paired_differences(base: ScheduleRecord, twin: ScheduleRecord, metric: str) -> list[float]:
    differences = []
    for _, run_a, run_b in paired_runs(base, twin):
        if run_a.diverged or run_b.diverged:
            continue
        difference = run_a.finals[metric] - run_b.finals[metric]
        if math.isfinite(difference):
            differences.append(difference)
    return differences
