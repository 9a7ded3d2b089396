"""The measured claims (a) to (c) of a comparison report, and the lookups all claims share.

Each claim is computed from the schedules and the run folder's CSVs, stated
with its numbers, and given one verdict by :func:`decide`, the single
decision rule for quantities measured once per seed. Claim (d) is in
:mod:`decaylab.report.final_claims` and the report order in
:mod:`decaylab.report.evaluate`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

import decaylab as dl
from decaylab.report.load import RunFolder, RunRecord, ScheduleRecord
from decaylab.report.verdicts import (
    NOT_SUPPORTED,
    SKIPPED,
    SUPPORTED,
    SeedStatistic,
    apply_sign_rule,
    combine_parts,
    decide,
)

_EXACT_RTOL = 1e-9

NO_BASE_REASON = (
    "the run folder has no step schedule with role 'base' and no twin; rerun "
    "`decaylab compare` with `--match half-life`, which matches a twin to the first "
    "--schedule (a step(...) or multistep(...) spec) and makes that schedule the base"
)
"""Skip reason of the claims that need a base step schedule, with the option that provides one."""

NO_HALF_LIFE_TWIN_REASON = (
    "the run folder has no half-life twin; rerun `decaylab compare` with half-life "
    "among the --match methods, e.g. `--match half-life,area`"
)


@dataclass(frozen=True)
class Claim:
    """One claim: what it states, the verdict, why, and the numbers behind it."""

    key: str
    title: str
    statement: str
    verdict: str
    reason: str
    evidence: tuple[str, ...] = ()
    numbers: dict[str, float] = field(default_factory=dict)


def skipped(key: str, title: str, statement: str, reason: str) -> Claim:
    return Claim(key, title, statement, SKIPPED, reason)


# -- shared lookups ------------------------------------------------------


def base_schedule(folder: RunFolder) -> ScheduleRecord | None:
    """Return the step schedule the twins were matched to.

    That is the schedule with role ``base``. Without one, ``decaylab compare``
    matches the twins to the first user schedule, so with twins present the
    first schedule is the base. Otherwise there is none.
    """
    base = folder.schedule_with_role("base")
    if base is None and any(r.role.endswith("twin") for r in folder.schedules):
        base = folder.schedules[0]
    return base


def comparison_schedules(folder: RunFolder, base: ScheduleRecord) -> list[ScheduleRecord]:
    """Return the twins of ``base``, or every exponential schedule when no twin exists."""
    twins = [r for r in folder.schedules if r.role.endswith("twin")]
    if twins:
        return twins
    return [
        r for r in folder.schedules
        if r is not base and isinstance(r.schedule, dl.ExponentialDecay)
    ]


def drop_steps(schedule: dl.Schedule, horizon: int) -> np.ndarray:
    """Return the updates ``t`` in ``[1, horizon)`` whose LR is below ``lr(t - 1)``."""
    lr = schedule(np.arange(horizon, dtype=np.float64))
    return np.flatnonzero(lr[1:] < lr[:-1]) + 1


def drop_windows(drops: np.ndarray, horizon: int, fraction: float) -> list[tuple[int, int]]:
    """Return ``(drop, width)`` pairs: the width is ``fraction`` of the gap to the nearest
    neighbouring drop or end of the run, at least 1 step."""
    bounds = [0, *[int(d) for d in drops], horizon]
    out = []
    for i in range(1, len(bounds) - 1):
        gap = min(bounds[i] - bounds[i - 1], bounds[i + 1] - bounds[i])
        out.append((bounds[i], max(1, int(gap * fraction))))
    return out


def window_median(series: np.ndarray, start: int, stop: int) -> float:
    """Return the median of the finite positive values in ``series[start:stop]``.

    The result is NaN when fewer than half the window is usable, as in a diverged run's tail.
    """
    window = series[max(0, start):stop]
    usable = window[np.isfinite(window) & (window > 0)]
    if usable.size == 0 or usable.size < (stop - max(0, start)) / 2:
        return math.nan
    return float(np.median(usable))


def window_mean(series: np.ndarray, start: int, stop: int) -> float:
    """Return the mean of the finite values in ``series[start:stop]`` (probe rows), NaN if none."""
    window = series[max(0, start):stop]
    usable = window[np.isfinite(window)]
    return float(usable.mean()) if usable.size else math.nan


def paired_runs(
    a: ScheduleRecord, b: ScheduleRecord
) -> list[tuple[int, RunRecord, RunRecord]]:
    """Return ``(seed, run_a, run_b)`` for every seed present in both schedules."""
    pairs = []
    for run_a in a.runs:
        run_b = b.run_for_seed(run_a.seed)
        if run_b is not None:
            pairs.append((run_a.seed, run_a, run_b))
    return pairs


def finite_mean(values: Sequence[float]) -> float:
    finite = [v for v in values if math.isfinite(v)]
    return float(np.mean(finite)) if finite else math.nan


# -- claim (a): schedule arithmetic ----------------------------------------


def claim_area_factor(folder: RunFolder) -> Claim:
    """Claim (a): step never below its half-life twin and ahead by the plateau factor.

    On a full plateau ``[kT, (k+1)T)`` the step schedule sums ``T * lr0 g^k``
    and its half-life twin ``lr0 g^k (1 - g) / (1 - g^(1/T))``, so their ratio
    is ``T (1 - g^(1/T)) / (1 - g)`` whatever ``k`` is (without a floor).
    """
    title = "Step LR versus its half-life twin"
    statement = (
        "The step schedule's LR is never below its half-life twin's, and on each full "
        "plateau its integrated LR exceeds the twin's by the factor T(1 - g^(1/T))/(1 - g)."
    )
    base = base_schedule(folder)
    twin = folder.schedule_with_role("half-life twin")
    if base is None:
        return skipped("a", title, statement, NO_BASE_REASON)
    if twin is None:
        return skipped("a", title, statement, NO_HALF_LIFE_TWIN_REASON)
    step, twin_schedule, warmup = _without_common_warmup(base.schedule, twin.schedule)
    if not isinstance(step, dl.StepDecay):
        return skipped("a", title, statement,
                       f"the base schedule is {type(step).__name__}, not StepDecay, so it has no single T")
    horizon, size, gamma = folder.horizon - warmup, step.step_size, step.gamma
    plateaus = horizon // size
    if plateaus == 0:
        return skipped("a", title, statement,
                       f"the horizon {horizon} is shorter than one plateau (T = {size})")

    times = np.arange(horizon, dtype=np.float64)
    min_ratio = float(np.min(step(times) / twin_schedule(times)))
    factor = dl.half_life_area_ratio(gamma, int(size))
    ratios = []
    for k in range(plateaus):
        step_area = dl.integrated_lr(step, (k + 1) * size) - dl.integrated_lr(step, k * size)
        twin_area = dl.integrated_lr(twin_schedule, (k + 1) * size) - dl.integrated_lr(twin_schedule, k * size)
        ratios.append(step_area / twin_area)
    deviation = max(abs(r / factor - 1.0) for r in ratios)
    total_ratio = dl.integrated_lr(step, horizon) / dl.integrated_lr(twin_schedule, horizon)
    matched = dl.match_half_life(step)(times)
    twin_error = float(np.max(np.abs(twin_schedule(times) / matched - 1.0)))
    recorded_error = _recorded_lr_error([base, twin], folder.horizon)

    never_below = min_ratio >= 1.0 - 1e-12
    verdict = SUPPORTED if never_below and deviation <= _EXACT_RTOL else NOT_SUPPORTED
    reason = (
        f"min step/twin LR ratio {min_ratio:.12g} {'>=' if never_below else '<'} 1 and the "
        f"largest relative deviation of a plateau ratio from the factor is {deviation:.2g} "
        f"(tolerance {_EXACT_RTOL:g})"
    )
    evidence: tuple[str, ...] = (
        f"T = {size}, g = {gamma:g}: closed-form factor T(1 - g^(1/T))/(1 - g) = {factor:.10g}",
        f"measured ratio on each of {plateaus} full plateau(s): "
        + ", ".join(f"{r:.10g}" for r in ratios),
        f"ratio of integrated LR over the {horizon} updates after a warm-up of {warmup}: {total_ratio:.10g}",
        f"min over t of step(t)/twin(t): {min_ratio:.10g}",
        f"the recorded twin differs from match_half_life(step) by at most {twin_error:.2g} (relative)",
        f"LR column of steps.csv versus schedule(step): max relative deviation {recorded_error:.2g}",
    )
    if step.min_lr > 0 or twin_schedule.min_lr > 0:
        evidence += (
            f"a floor applies (min_lr {step.min_lr:g} and {twin_schedule.min_lr:g}); the closed-form "
            "factor assumes none, so plateaus where the floor binds deviate from it",
        )
    numbers = {
        "factor": factor, "max_plateau_deviation": deviation, "min_ratio": min_ratio,
        "total_ratio": total_ratio, "twin_error": twin_error, "recorded_lr_error": recorded_error,
    }
    return Claim("a", title, statement, verdict, reason, evidence, numbers)


def _without_common_warmup(
    step: dl.Schedule, twin: dl.Schedule
) -> tuple[dl.Schedule, dl.Schedule, int]:
    """Unwrap a warm-up that both schedules share, so the decay phases are compared.

    During a shared warm-up both ramp to the same ``lr(0)`` and are equal.
    Returns the two decay schedules and the warm-up length (0 when none).
    """
    if (isinstance(step, dl.Warmup) and isinstance(twin, dl.Warmup)
            and step.steps == twin.steps and step.start_lr == twin.start_lr):
        return step.schedule, twin.schedule, step.steps
    return step, twin, 0


def _recorded_lr_error(records: Sequence[ScheduleRecord], horizon: int) -> float:
    worst = 0.0
    for record in records:
        expected = record.schedule(np.arange(horizon, dtype=np.float64))
        for run in record.runs:
            recorded = run.series("lr", horizon)
            usable = np.isfinite(recorded) & (expected > 0)
            if usable.any():
                error = np.abs(recorded[usable] / expected[usable] - 1.0)
                worst = max(worst, float(error.max()))
    return worst


# -- claim (b): displacement plateaus and drops ------------------------------


def claim_displacement_shape(folder: RunFolder, base: ScheduleRecord, twin: ScheduleRecord) -> Claim:
    """Claim (b) for one twin, from the ``displacement`` column (m_t) of paired seeds.

    Drop contrast: at each LR drop of the step schedule, ``log(median m after /
    median m before)`` over windows of a quarter of the gap to the nearest
    drop; the twin's log-ratio over the same steps minus the step run's is > 0
    when the step run drops more sharply. Flatness contrast: on each plateau,
    ``log(median m in the last quarter / median m in the first quarter)``; the
    step run's minus the twin's is > 0 when the step run is flatter. Both are
    averaged over drops or plateaus per seed and decided by :func:`decide`.
    """
    key = f"b:{twin.name}"
    title = f"Displacement m_t: step plateaus versus the {twin.name} slide"
    statement = (
        f"m_t drops at each LR drop of `{base.name}` and stays flat in between, while "
        f"`{twin.name}` slides over the same steps."
    )
    horizon = folder.horizon
    drops = drop_steps(base.schedule, horizon)
    if drops.size == 0:
        return skipped(key, title, statement, f"`{base.name}` has no LR drop within {horizon} updates")
    pairs = paired_runs(base, twin)
    # NOTE: the quarter-gap windows were checked on synthetic runs and the default
    # digits run. A transient longer than a quarter plateau, such as velocity-form
    # momentum at small gamma, would blur the drop.
    if not pairs:
        return skipped(key, title, statement, "the two schedules share no seed")

    bounds = [0, *[int(d) for d in drops], horizon]
    plateaus = [(a, b) for a, b in zip(bounds[:-1], bounds[1:]) if b - a >= 8]
    drop_contrast, flat_contrast, step_drop_ratio = [], [], []
    for _, step_run, twin_run in pairs:
        m_step = step_run.series("displacement", horizon)
        m_twin = twin_run.series("displacement", horizon)
        per_drop = []
        for drop, width in drop_windows(drops, horizon, 0.25):
            step_log = _log_change(m_step, drop - width, drop, drop, drop + width)
            twin_log = _log_change(m_twin, drop - width, drop, drop, drop + width)
            per_drop.append(twin_log - step_log)
            step_drop_ratio.append(math.exp(step_log) if math.isfinite(step_log) else math.nan)
        per_plateau = []
        for a, b in plateaus:
            quarter = (b - a) // 4
            step_log = _log_change(m_step, a, a + quarter, b - quarter, b)
            twin_log = _log_change(m_twin, a, a + quarter, b - quarter, b)
            per_plateau.append(step_log - twin_log)
        drop_contrast.append(finite_mean(per_drop))
        flat_contrast.append(finite_mean(per_plateau))

    drop_verdict, drop_reason, drop_n = apply_sign_rule(drop_contrast, +1)
    flat_verdict, flat_reason, flat_n = apply_sign_rule(flat_contrast, +1)
    lr_before = base.schedule(drops.astype(np.float64) - 1.0)
    lr_ratio = finite_mean(list(base.schedule(drops.astype(np.float64)) / lr_before))
    drop_stat, flat_stat = SeedStatistic.of(drop_contrast), SeedStatistic.of(flat_contrast)
    evidence = (
        f"drop contrast (twin log-ratio minus step log-ratio across {drops.size} drop(s)): "
        + drop_stat.describe(+1),
        f"plateau flatness contrast (step log-change minus twin log-change over {len(plateaus)} "
        "plateau(s)): " + flat_stat.describe(+1),
        f"m_t after/before a drop in the step runs: mean {finite_mean(step_drop_ratio):.4g} "
        f"(the LR ratio is {lr_ratio:.4g})",
    )
    verdict, note = combine_parts([(drop_verdict, drop_n), (flat_verdict, flat_n)], +1)
    reason = f"drop contrast {drop_verdict} ({drop_reason}); flatness contrast {flat_verdict} ({flat_reason})"
    if note:
        reason += f"; {note}"
    numbers = {
        "drop_contrast_mean": drop_stat.mean, "flat_contrast_mean": flat_stat.mean,
        "seeds": float(min(drop_stat.n, flat_stat.n)),
    }
    return Claim(key, title, statement, verdict, reason, evidence, numbers)


def _log_change(series: np.ndarray, a0: int, a1: int, b0: int, b1: int) -> float:
    before, after = window_median(series, a0, a1), window_median(series, b0, b1)
    if not (math.isfinite(before) and math.isfinite(after)):
        return math.nan
    return math.log(after / before)


# -- claim (c): sharpness and the stability ceiling ---------------------------


def claim_under_ceiling(folder: RunFolder) -> Claim:
    """Claim (c), first part: every probe's sharpness is below its ceiling.

    Per run the margin is ``1 - max(sharpness / ceiling)`` over probe steps;
    each schedule's margins are decided by :func:`decide` and the schedules'
    verdicts combined by :func:`combine`.
    """
    title = "Sharpness under the stability ceiling"
    statement = "Sharpness stays below the stability ceiling at every probe, in every schedule."
    parts, evidence, worst = [], [], -math.inf
    for record in folder.schedules:
        margins, fractions = [], []
        for run in record.runs:
            ratio = _probe_ratios(run)
            if ratio.size:
                margins.append(1.0 - float(ratio.max()))
                fractions.append(float(np.mean(ratio < 1.0)))
        if not margins:
            continue
        verdict, _, n = apply_sign_rule(margins, +1)
        parts.append((verdict, n))
        worst = max(worst, 1.0 - min(margins))
        evidence.append(
            f"`{record.name}`: fraction of probes below the ceiling {np.mean(fractions):.3f} "
            f"(lowest run {min(fractions):.3f}); max sharpness/ceiling {1.0 - min(margins):.4g} "
            f"over {len(margins)} run(s); verdict {verdict}"
        )
    if not parts:
        return skipped("c:ceiling", title, statement, "no run recorded a sharpness probe")
    verdict, note = combine_parts(parts, +1)
    reason = f"per-schedule verdicts: {', '.join(v for v, _ in parts)}"
    if note:
        reason += f"; {note}"
    return Claim("c:ceiling", title, statement, verdict, reason, tuple(evidence), {"max_ratio": worst})


def _probe_ratios(run: RunRecord) -> np.ndarray:
    sharpness, ceiling = run.steps.get("sharpness"), run.steps.get("ceiling")
    if sharpness is None or ceiling is None:
        return np.empty(0)
    usable = np.isfinite(sharpness) & np.isfinite(ceiling) & (ceiling > 0)
    return np.asarray(sharpness[usable] / ceiling[usable], dtype=np.float64)


def claim_sharpening_after_drops(folder: RunFolder, base: ScheduleRecord) -> Claim:
    """Claim (c), second part: sharpness rises after each LR drop of the step schedule.

    Per seed, the rise is the mean over drops of (mean probe sharpness in
    ``[d, d + w)`` minus mean probe sharpness in ``[d - w, d)``). The width
    ``w`` is half the gap to the nearest neighbouring drop or end of the run.
    The per-seed rises are decided by :func:`decide`.
    """
    title = f"Sharpness rises after the LR drops of `{base.name}`"
    statement = "After each LR drop of the step schedule, sharpness rises above its level before the drop."
    horizon = folder.horizon
    drops = drop_steps(base.schedule, horizon)
    if drops.size == 0:
        return skipped("c:rise", title, statement, f"`{base.name}` has no LR drop within {horizon} updates")
    if not any(run.has_probes() for run in base.runs):
        return skipped("c:rise", title, statement, f"no run of `{base.name}` recorded a sharpness probe")

    rises, relative = [], []
    for run in base.runs:
        sharpness = run.series("sharpness", horizon)
        per_drop = []
        for drop, width in drop_windows(drops, horizon, 0.5):
            before = window_mean(sharpness, drop - width, drop)
            after = window_mean(sharpness, drop, drop + width)
            per_drop.append(after - before)
            if before > 0 and math.isfinite(after):
                relative.append(after / before)
        rises.append(finite_mean(per_drop))
    if not any(math.isfinite(rise) for rise in rises):
        return skipped("c:rise", title, statement,
                       "no LR drop has a sharpness probe on both sides within half the gap to its neighbours")
    verdict, reason = decide(rises, +1)
    stat = SeedStatistic.of(rises)
    evidence = (
        f"sharpness after minus before, averaged over {drops.size} drop(s): " + stat.describe(+1),
        f"mean ratio after/before over all drops and seeds: {finite_mean(relative):.4g}",
    )
    return Claim("c:rise", title, statement, verdict, reason, evidence, {"rise_mean": stat.mean})
