"""The measured claims and the decision rule, on run folders with known results."""

from __future__ import annotations

import json
import math

import pytest

import decaylab as dl
from decaylab.report.claims import NO_BASE_REASON
from decaylab.report.evaluate import evaluate_claims
from decaylab.report.final_claims import (
    LR_MARGIN,
    final_probe_step,
    lr_relative_difference,
)
from decaylab.report.load import load_run_folder
from decaylab.report.verdicts import (
    INCONCLUSIVE,
    NOT_SUPPORTED,
    SKIPPED,
    SUPPORTED,
    SeedStatistic,
    combine,
    decide,
    smallest_sign_test_p,
)


def claims_of(root):
    return {claim.key: claim for claim in evaluate_claims(load_run_folder(root))}


@pytest.mark.parametrize(
    ("values", "sign", "verdict"),
    [
        ([0.1, 0.2, 0.3], +1, SUPPORTED),
        ([-0.1, -0.2, -0.3], +1, NOT_SUPPORTED),
        ([-0.1, -0.2], -1, SUPPORTED),
        ([0.1, -0.2, 0.3], +1, INCONCLUSIVE),
        ([0.1, 0.0, 0.3], +1, INCONCLUSIVE),
        ([0.5], +1, INCONCLUSIVE),
        ([0.5, math.nan], +1, INCONCLUSIVE),
        ([0.5, math.nan, 0.2], +1, SUPPORTED),
        ([-0.1, -0.2], 0, SUPPORTED),
        ([0.1, -0.2], 0, INCONCLUSIVE),
    ],
)
def test_decide_table(values, sign, verdict):
    assert decide(values, sign)[0] == verdict


def test_decide_rejects_bad_sign():
    with pytest.raises(ValueError, match="expected_sign must be -1, 0 or \\+1, got 2"):
        decide([1.0, 2.0], 2)


def test_seed_statistic_values():
    stat = SeedStatistic.of([1.0, 2.0, 3.0, math.inf])

    assert stat.n == 3
    assert stat.mean == 2.0
    assert stat.std == 1.0
    assert stat.t_statistic == pytest.approx(2.0 * math.sqrt(3.0))
    assert stat.sign_test_p(+1) == 0.125
    assert stat.sign_test_p(-1) == 1.0
    assert stat.sign_test_p(0) == 0.25


def test_seed_statistic_single_value():
    stat = SeedStatistic.of([0.7])

    assert stat.std == 0.0
    assert math.isnan(stat.t_statistic)


def test_combine_verdicts():
    assert combine([SUPPORTED, SUPPORTED]) == SUPPORTED
    assert combine([SUPPORTED, INCONCLUSIVE]) == INCONCLUSIVE
    assert combine([SUPPORTED, NOT_SUPPORTED, INCONCLUSIVE]) == NOT_SUPPORTED
    assert combine([]) == INCONCLUSIVE


def test_area_factor_supported(make_folder):
    claim = claims_of(make_folder(seeds=1, step_size=40, gamma=0.3, epochs=5))["a"]

    assert claim.verdict == SUPPORTED
    assert claim.numbers["factor"] == pytest.approx(dl.half_life_area_ratio(0.3, 40), rel=1e-12)
    assert claim.numbers["factor"] == pytest.approx(40 * (1 - 0.3 ** (1 / 40)) / 0.7, rel=1e-12)
    assert claim.numbers["max_plateau_deviation"] < 1e-12
    assert claim.numbers["min_ratio"] == pytest.approx(1.0)
    assert claim.numbers["recorded_lr_error"] < 1e-12


def test_area_factor_wrong_twin(make_folder):
    root = make_folder(seeds=1)
    summary = json.loads((root / "summary.json").read_text(encoding="utf-8"))
    faster = dl.ExponentialDecay(initial_lr=0.1, half_life=50)
    summary["schedules"][1]["schedule"] = faster.to_dict()
    (root / "summary.json").write_text(json.dumps(summary), encoding="utf-8")

    claim = claims_of(root)["a"]

    assert claim.verdict == NOT_SUPPORTED
    assert claim.numbers["twin_error"] > 0.1
    assert claim.numbers["max_plateau_deviation"] > 0.1


def test_area_factor_skipped_without_twin(make_folder):
    claim = claims_of(make_folder(seeds=2, twins=("area",)))["a"]

    assert claim.verdict == SKIPPED
    assert "no half-life twin" in claim.reason


def test_area_factor_skipped_short_horizon(make_folder):
    claim = claims_of(make_folder(seeds=1, epochs=1, steps_per_epoch=50, step_size=80))["a"]

    assert claim.verdict == SKIPPED
    assert "shorter than one plateau" in claim.reason


def test_displacement_plateaus_supported(make_folder):
    claim = claims_of(make_folder(seeds=3))["b:exp-half-life"]

    assert claim.verdict == SUPPORTED
    assert claim.numbers["drop_contrast_mean"] > 0.4
    assert claim.numbers["flat_contrast_mean"] > 0.4
    assert claim.numbers["seeds"] == 3


def test_displacement_swapped_not_supported(make_folder):
    claim = claims_of(make_folder(seeds=3, swap_displacement=True))["b:exp-half-life"]

    assert claim.verdict == NOT_SUPPORTED
    assert claim.numbers["drop_contrast_mean"] < -0.4


def test_displacement_one_seed_inconclusive(make_folder):
    claim = claims_of(make_folder(seeds=1))["b:exp-half-life"]

    assert claim.verdict == INCONCLUSIVE
    assert "only 1 seed(s)" in claim.reason


def test_displacement_same_shape_inconclusive(make_folder):
    root = make_folder(seeds=3)
    for seed in range(3):
        step_csv = root / "runs" / f"step-seed{seed}" / "steps.csv"
        (root / "runs" / f"exp-half-life-seed{seed}" / "steps.csv").write_bytes(step_csv.read_bytes())

    claim = claims_of(root)["b:exp-half-life"]

    assert claim.verdict == INCONCLUSIVE
    assert claim.numbers["drop_contrast_mean"] == 0.0
    assert claim.numbers["flat_contrast_mean"] == 0.0


def test_displacement_one_claim_per_twin(make_folder):
    claims = claims_of(make_folder(seeds=2, twins=("half-life", "final-lr", "area")))

    assert {"b:exp-half-life", "b:exp-final-lr", "b:exp-area"} <= set(claims)


def test_displacement_skipped_without_twin(make_folder):
    claims = claims_of(make_folder(seeds=2, twins=()))

    assert claims["b"].verdict == SKIPPED
    assert "no twin" in claims["b"].reason
    assert claims["d"].verdict == SKIPPED


def test_displacement_with_diverged_twin(make_folder):
    claim = claims_of(make_folder(seeds=3, diverge={"exp-half-life-seed2": 150}))["b:exp-half-life"]

    assert claim.verdict == SUPPORTED
    assert claim.numbers["seeds"] == 3


def test_ceiling_supported(make_folder):
    claim = claims_of(make_folder(seeds=2, sharpness_level=0.8))["c:ceiling"]

    assert claim.verdict == SUPPORTED
    assert 0.8 < claim.numbers["max_ratio"] < 1.0


def test_ceiling_exceeded_not_supported(make_folder):
    claim = claims_of(make_folder(seeds=2, sharpness_level={"step": 1.3, "exp-half-life": 0.7}))["c:ceiling"]

    assert claim.verdict == NOT_SUPPORTED
    assert claim.numbers["max_ratio"] > 1.2


def test_ceiling_skipped_without_probes(make_folder):
    claims = claims_of(make_folder(seeds=2, probe_every=None))

    assert claims["c:ceiling"].verdict == SKIPPED
    assert claims["c:rise"].verdict == SKIPPED
    assert "sharpness probe" in claims["c:rise"].reason


def test_sharpness_rise_supported(make_folder):
    claim = claims_of(make_folder(seeds=3))["c:rise"]

    assert claim.verdict == SUPPORTED
    assert claim.numbers["rise_mean"] > 0


def test_sharpness_fall_not_supported(make_folder):
    claim = claims_of(make_folder(seeds=3, sharpness_follows_lr=True))["c:rise"]

    assert claim.verdict == NOT_SUPPORTED
    assert claim.numbers["rise_mean"] < 0


def test_final_accuracy_paired(make_folder):
    offsets = {"step": [0.02, 0.03, 0.025]}
    claim = claims_of(make_folder(seeds=3, accuracy_offset=offsets))["d:accuracy:exp-half-life"]

    assert claim.verdict == SUPPORTED
    assert claim.numbers["difference_mean"] == pytest.approx(0.025)
    assert "higher by 0.025" in claim.evidence[1]


def test_final_accuracy_mixed_inconclusive(make_folder):
    offsets = {"step": [0.02, -0.03, 0.025]}
    claim = claims_of(make_folder(seeds=3, accuracy_offset=offsets))["d:accuracy:exp-half-life"]

    assert claim.verdict == INCONCLUSIVE
    assert "covers zero" in claim.reason


def test_final_sharpness_direction(make_folder):
    claims = claims_of(make_folder(seeds=3, twins=("half-life", "area")))

    # The step run's last LR (0.025) exceeds the half-life twin's, so it ends flatter;
    # the area twin's last LR is larger than the step run's, so the step run ends sharper.
    assert claims["d:sharpness:exp-half-life"].verdict == SUPPORTED
    assert claims["d:sharpness:exp-half-life"].numbers["difference_mean"] < 0
    assert claims["d:sharpness:exp-area"].verdict == SUPPORTED
    assert claims["d:sharpness:exp-area"].numbers["difference_mean"] > 0


def test_final_values_skip_diverged(make_folder):
    root = make_folder(seeds=2, diverge={"exp-half-life-seed0": 100})
    claims = claims_of(root)

    assert claims["d:accuracy:exp-half-life"].verdict == INCONCLUSIVE
    assert "only 1 seed(s)" in claims["d:accuracy:exp-half-life"].reason


def test_no_base_skips(make_folder):
    root = make_folder(seeds=2, twins=("half-life",), base_role="user")
    summary = json.loads((root / "summary.json").read_text(encoding="utf-8"))
    summary["schedules"][1]["role"] = "user"
    (root / "summary.json").write_text(json.dumps(summary), encoding="utf-8")

    claims = claims_of(root)

    assert claims["a"].verdict == SKIPPED
    assert claims["b"].verdict == SKIPPED
    assert claims["c:rise"].verdict == SKIPPED
    assert claims["d"].verdict == SKIPPED
    assert claims["c:ceiling"].verdict == SUPPORTED
    for key in ("a", "b", "c:rise", "d"):
        assert claims[key].reason == NO_BASE_REASON
        assert "`--match half-life`" in claims[key].reason


def test_sharpness_rise_sparse_probes_skipped(make_folder):
    claim = claims_of(make_folder(seeds=2, probe_every=120))["c:rise"]

    assert claim.verdict == SKIPPED
    assert "probe on both sides" in claim.reason


def test_area_factor_after_warmup(make_folder):
    claim = claims_of(make_folder(seeds=1, warmup=20, epochs=5, step_size=70))["a"]

    assert claim.verdict == SUPPORTED
    assert claim.numbers["factor"] == pytest.approx(dl.half_life_area_ratio(0.5, 70), rel=1e-12)
    assert claim.numbers["max_plateau_deviation"] < 1e-12
    assert "warm-up of 20" in claim.evidence[2]


def test_user_base_with_twins(make_folder):
    claims = claims_of(make_folder(seeds=3, base_role="user"))

    assert claims["a"].verdict == SUPPORTED
    assert claims["b:exp-half-life"].verdict == SUPPORTED
    assert claims["c:rise"].verdict == SUPPORTED


def test_displacement_supported_after_warmup(make_folder):
    claim = claims_of(make_folder(seeds=3, warmup=20))["b:exp-half-life"]

    assert claim.verdict == SUPPORTED


def test_area_factor_floor_noted(make_folder):
    root = make_folder(seeds=1)
    summary = json.loads((root / "summary.json").read_text(encoding="utf-8"))
    for entry in summary["schedules"]:
        entry["schedule"]["min_lr"] = 0.03
    (root / "summary.json").write_text(json.dumps(summary), encoding="utf-8")

    claim = claims_of(root)["a"]

    assert claim.verdict == NOT_SUPPORTED
    assert "a floor applies" in claim.evidence[-1]
    assert claim.numbers["min_ratio"] >= 1.0


def rewrite_finals(root, metric, values_by_run):
    """Set ``metric`` of the named runs in summary.json to the given values."""
    summary = json.loads((root / "summary.json").read_text(encoding="utf-8"))
    for entry in summary["schedules"]:
        for run in entry["runs"]:
            if run["run_id"] in values_by_run:
                run[metric] = values_by_run[run["run_id"]]
    (root / "summary.json").write_text(json.dumps(summary), encoding="utf-8")


def probe_value(root, run_id, step):
    """Return the sharpness of ``run_id``'s probe row at ``step``."""
    run = next(r for s in load_run_folder(root).schedules for r in s.runs if r.run_id == run_id)
    return float(run.series("sharpness", step + 1)[step])


@pytest.mark.parametrize(
    ("n", "sign", "p"),
    [(1, +1, 0.5), (2, +1, 0.25), (3, -1, 0.125), (5, +1, 0.03125),
     (1, 0, 1.0), (2, 0, 0.5), (3, 0, 0.25), (6, 0, 0.03125)],
)
def test_smallest_sign_test_p_table(n, sign, p):
    assert smallest_sign_test_p(n, sign) == p


def test_smallest_p_matches_sign_test():
    for n in range(1, 8):
        assert smallest_sign_test_p(n, +1) == SeedStatistic.of([1.0] * n).sign_test_p(+1)
        assert smallest_sign_test_p(n, 0) == SeedStatistic.of([1.0] * n).sign_test_p(0)


def test_decide_agreement_not_significance():
    supported = decide([0.1, 0.2, 0.3], +1)[1]
    refuted = decide([0.1, 0.2], -1)[1]
    difference = decide([0.1, 0.2, 0.3], 0)[1]

    assert "not statistical significance" in supported
    assert "smallest one-sided sign-test p is 0.125" in supported
    assert "smallest one-sided sign-test p is 0.25" in refuted
    assert "smallest two-sided sign-test p is 0.25" in difference


def test_decide_inconclusive_has_no_note():
    assert "significance" not in decide([0.1, -0.2, 0.3], +1)[1]
    assert "significance" not in decide([0.1], +1)[1]


def test_decide_all_zero_seeds_equal():
    for sign in (-1, 0, +1):
        verdict, reason = decide([0.0, 0.0, 0.0], sign)

        assert verdict == INCONCLUSIVE
        assert reason.startswith("all 3 seeds equal")
        assert "covers zero" not in reason


def test_describe_zero_spread_t_not_available():
    text = SeedStatistic.of([0.0, 0.0, 0.0]).describe(0)

    assert "paired t = n/a" in text
    assert "nan" not in text
    assert "paired t = n/a" in SeedStatistic.of([0.5]).describe(+1)
    assert "paired t = 3.46" in SeedStatistic.of([1.0, 2.0, 3.0]).describe(+1)


def test_final_accuracy_all_equal(make_folder):
    # The synthetic accuracy depends only on the seed, so step and twin tie at every seed.
    claim = claims_of(make_folder(seeds=3))["d:accuracy:exp-half-life"]

    assert claim.verdict == INCONCLUSIVE
    assert claim.reason.startswith("all 3 seeds equal")
    assert "paired t = n/a" in claim.evidence[0]
    assert "nan" not in claim.evidence[0]


def test_displacement_note_once(make_folder):
    claim = claims_of(make_folder(seeds=3))["b:exp-half-life"]

    assert claim.reason.count("not statistical significance") == 1
    assert claim.reason.endswith("smallest one-sided sign-test p is 0.125")


def test_ceiling_verdict_has_note(make_folder):
    claim = claims_of(make_folder(seeds=2))["c:ceiling"]

    assert claim.verdict == SUPPORTED
    assert claim.reason.endswith("with 2 seeds the smallest one-sided sign-test p is 0.25")


def test_area_skipped_names_match_option(make_folder):
    claim = claims_of(make_folder(seeds=2, twins=("area",)))["a"]

    assert "half-life among the --match methods" in claim.reason


def test_displacement_skipped_names_match_option(make_folder):
    claims = claims_of(make_folder(seeds=2, twins=()))

    assert "`--match half-life`" in claims["b"].reason
    assert "`--match half-life`" in claims["d"].reason


def test_lr_relative_difference_cases():
    assert lr_relative_difference(0.1, 0.1) == 0.0
    assert lr_relative_difference(0.0, 0.0) == 0.0
    assert lr_relative_difference(0.0, 0.1) == math.inf
    assert lr_relative_difference(0.2, 0.1) == pytest.approx(1.0)
    assert lr_relative_difference(0.1, 0.2) == pytest.approx(1.0)


def test_final_sharpness_within_margin(make_folder):
    # step_size 101 keeps the last drop before the horizon, as the lab's default does, so the
    # final-LR twin differs from the step LR by under 5 % at the probe after update 290.
    claim = claims_of(make_folder(seeds=3, step_size=101, twins=("final-lr",)))["d:sharpness:exp-final-lr"]

    assert 0 < claim.numbers["lr_relative_difference"] <= LR_MARGIN
    assert "no direction is predicted, only a difference" in claim.statement
    assert claim.verdict == SUPPORTED
    assert "all 3 seeds differ with the same sign" in claim.reason
    assert "two-sided sign-test p is 0.25" in claim.reason


def test_final_sharpness_at_last_update(make_folder):
    root = make_folder(seeds=3, step_size=101, twins=("final-lr",), final_probe=True)
    claim = claims_of(root)["d:sharpness:exp-final-lr"]

    assert claim.numbers["probe_step"] == 299
    assert claim.evidence[0].startswith("LR at the last update t = 299, after which the final sharpness")
    assert claim.numbers["lr_relative_difference"] == pytest.approx(0.25 ** (-1 / 300) - 1, rel=1e-9)
    assert "at the last update t = 299 differ by 0.463 %, within the 10 % margin" in claim.statement
    assert len(claim.evidence) == 2


def test_final_sharpness_names_probe_step(make_folder):
    claim = claims_of(make_folder(seeds=3))["d:sharpness:exp-half-life"]

    assert claim.numbers["probe_step"] == 290
    assert claim.evidence[0].startswith("LR at update t = 290, after which")
    assert "step 0.025, twin 0.0134" in claim.evidence[0]
    assert "9 update(s) before the last update t = 299" in claim.evidence[2]
    assert "used the larger LR at update t = 290" in claim.statement


def test_final_probe_step_matches_value(make_folder):
    root = make_folder(seeds=1)
    rewrite_finals(root, "final_sharpness", {"step-seed0": probe_value(root, "step-seed0", 150)})
    runs = {r.run_id: r for s in load_run_folder(root).schedules for r in s.runs}

    assert final_probe_step(runs["step-seed0"]) == 150
    assert final_probe_step(runs["exp-half-life-seed0"]) == 290


def test_final_sharpness_unmatched_value(make_folder):
    root = make_folder(seeds=2)
    rewrite_finals(root, "final_sharpness", {"step-seed0": 5.0, "step-seed1": 6.0,
                                              "exp-half-life-seed0": 7.0, "exp-half-life-seed1": 8.0})

    claim = claims_of(root)["d:sharpness:exp-half-life"]

    assert claim.numbers["probe_step"] == 299
    assert "no probe row of steps.csv contains the final sharpness" in claim.evidence[-1]


def test_final_sharpness_mixed_probe_steps_skipped(make_folder):
    root = make_folder(seeds=2)
    rewrite_finals(root, "final_sharpness", {"step-seed1": probe_value(root, "step-seed1", 280)})

    claim = claims_of(root)["d:sharpness:exp-half-life"]

    assert claim.verdict == SKIPPED
    assert "after different updates (280, 290)" in claim.reason


def test_final_sharpness_only_first_probe(make_folder):
    # A run shorter than the probe interval has its only probe after update 0, where every
    # schedule has the same LR and the synthetic sharpness is the same.
    claim = claims_of(make_folder(seeds=3, probe_every=400))["d:sharpness:exp-half-life"]

    assert "the two LRs at update t = 0 are equal" in claim.statement
    assert claim.verdict == INCONCLUSIVE
    assert claim.reason.startswith("all 3 seeds equal")
    assert "299 update(s) before the last update t = 299" in claim.evidence[2]
