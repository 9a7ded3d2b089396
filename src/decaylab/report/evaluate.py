"""Evaluate every claim of a comparison report, in report order."""

from __future__ import annotations

from decaylab.report.claims import (
    NO_BASE_REASON,
    Claim,
    base_schedule,
    claim_area_factor,
    claim_displacement_shape,
    claim_sharpening_after_drops,
    claim_under_ceiling,
    comparison_schedules,
    skipped,
)
from decaylab.report.final_claims import claim_final_accuracy, claim_final_sharpness
from decaylab.report.load import RunFolder

NO_TWIN_REASON = (
    "the run folder has no twin or exponential schedule to compare with; rerun "
    "`decaylab compare` with `--match half-life` (or final-lr, area)"
)
"""Skip reason of the claims that compare the base with a twin, when the folder has no twin."""


def evaluate_claims(folder: RunFolder) -> list[Claim]:
    """Evaluate claims (a) to (d) on a validated run folder, in report order."""
    claims = [claim_area_factor(folder)]
    base = base_schedule(folder)
    twins = comparison_schedules(folder, base) if base is not None else []
    missing = NO_BASE_REASON if base is None else NO_TWIN_REASON

    if base is None or not twins:
        claims.append(skipped("b", "Displacement m_t: plateaus versus slide",
                              "m_t shows plateaus and drops for step decay and a slide for exponential decay.",
                              missing))
    else:
        claims.extend(claim_displacement_shape(folder, base, twin) for twin in twins)

    claims.append(claim_under_ceiling(folder))
    if base is None:
        claims.append(skipped("c:rise", "Sharpness after LR drops",
                              "Sharpness rises after each LR drop of the step schedule.", NO_BASE_REASON))
    else:
        claims.append(claim_sharpening_after_drops(folder, base))

    if base is None or not twins:
        claims.append(skipped("d", "Final sharpness and accuracy",
                              "The step schedule and its twins differ in final sharpness and accuracy.",
                              missing))
    else:
        for twin in twins:
            claims.append(claim_final_sharpness(base, twin, folder.horizon))
            claims.append(claim_final_accuracy(base, twin))
    return claims
