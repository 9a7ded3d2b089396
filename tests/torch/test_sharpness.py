"""SharpnessProbe: ceilings per optimizer, preconditioned sharpness, cadence, divergence."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from decaylab.torch.optim import VelocitySGD
from decaylab.torch.sharpness import SharpnessProbe

torch.set_num_threads(2)
SPECTRUM = [6.0, 4.0, 3.0, 1.0, 0.5, -2.0]


@pytest.fixture()
def quadratic(make_quadratic, make_spectrum_matrix):
    matrix = make_spectrum_matrix(SPECTRUM)
    model, loss_fn, batches = make_quadratic(matrix)
    return matrix, model, loss_fn, batches


def quadratic_step(model, loss_fn, batches, optimizer) -> float:
    optimizer.zero_grad()
    loss = loss_fn(model(batches[0][0]), batches[0][1])
    loss.backward()
    optimizer.step()
    return float(loss.detach())


@pytest.mark.parametrize(
    ("options", "ceiling"),
    [
        ({}, 20.0),
        ({"momentum": 0.9}, 38.0),
        ({"momentum": 0.9, "nesterov": True}, 3.8 / (0.1 * 2.8)),
        ({"momentum": 0.9, "dampening": 0.5}, 3.8 / 0.05),
    ],
)
def test_sgd_ceilings(options, ceiling, quadratic):
    _, model, loss_fn, batches = quadratic
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, **options)
    probe = SharpnessProbe(model, loss_fn, batches, optimizer, every=1, tol=1e-10)

    row = probe.after_step(0)

    assert row["ceiling"] == pytest.approx(ceiling, rel=1e-12)
    assert row["sharpness"] == pytest.approx(6.0, rel=1e-10)
    assert row["above_ceiling"] == 0.0
    assert row["sharpness_diverged"] == 0.0


def test_velocity_sgd_uses_heavy_ball_ceiling(quadratic):
    _, model, loss_fn, batches = quadratic
    optimizer = VelocitySGD(model.parameters(), lr=0.1, momentum=0.5)

    row = SharpnessProbe(model, loss_fn, batches, optimizer, every=1).measure()

    assert row["ceiling"] == pytest.approx(30.0, rel=1e-12)


def test_coupled_weight_decay_adds_to_sharpness(quadratic):
    _, model, loss_fn, batches = quadratic
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, weight_decay=0.25)

    row = SharpnessProbe(model, loss_fn, batches, optimizer, tol=1e-10).measure()

    assert row["sharpness"] == pytest.approx(6.25, rel=1e-10)


def test_above_ceiling_flagged(quadratic):
    _, model, loss_fn, batches = quadratic
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)

    row = SharpnessProbe(model, loss_fn, batches, optimizer).measure()

    assert row["ceiling"] == pytest.approx(4.0)
    assert row["above_ceiling"] == 1.0


def test_group_learning_rates_scale_curvature(make_spectrum_matrix):
    matrix = make_spectrum_matrix([5.0, 2.0, 1.0, 0.5])
    first = nn.Parameter(torch.ones(2, dtype=torch.float64))
    second = nn.Parameter(torch.ones(2, dtype=torch.float64))
    model = nn.Module()
    model.first, model.second = first, second
    model.forward = lambda inputs: torch.cat([model.first, model.second])

    def loss_fn(weight, targets):
        return 0.5 * weight @ matrix @ weight

    batches = [(torch.zeros(4, 1), torch.zeros(4))]
    optimizer = torch.optim.SGD([{"params": [first], "lr": 0.2}, {"params": [second], "lr": 0.05}])
    root = torch.tensor([1.0, 1.0, 0.5, 0.5], dtype=torch.float64)
    expected = float(torch.linalg.eigvalsh(root[:, None] * matrix * root[None, :])[-1])

    row = SharpnessProbe(model, loss_fn, batches, optimizer, tol=1e-10).measure()

    assert row["ceiling"] == pytest.approx(10.0)
    assert row["sharpness"] == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize("optimizer_class", [torch.optim.Adam, torch.optim.AdamW])
@pytest.mark.parametrize("amsgrad", [False, True])
def test_adam_preconditioned_sharpness(optimizer_class, amsgrad, quadratic):
    matrix, model, loss_fn, batches = quadratic
    optimizer = optimizer_class(
        model.parameters(), lr=0.01, betas=(0.9, 0.99), eps=1e-8, amsgrad=amsgrad
    )
    for _ in range(5):
        quadratic_step(model, loss_fn, batches, optimizer)
    state = optimizer.state[model.weight]
    second = state["max_exp_avg_sq"] if amsgrad else state["exp_avg_sq"]
    inverse = 1.0 / ((second / (1 - 0.99 ** float(state["step"]))).sqrt() + 1e-8)
    expected = float(
        torch.linalg.eigvalsh(inverse.sqrt()[:, None] * matrix * inverse.sqrt()[None, :])[-1]
    )

    row = SharpnessProbe(model, loss_fn, batches, optimizer, tol=1e-10).measure()

    assert row["ceiling"] == pytest.approx(3.8 / (0.1 * 0.01), rel=1e-12)
    assert row["sharpness"] == pytest.approx(expected, rel=1e-9)


def test_adam_coupled_weight_decay_is_preconditioned(quadratic):
    matrix, model, loss_fn, batches = quadratic
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01, weight_decay=0.5)
    quadratic_step(model, loss_fn, batches, optimizer)
    state = optimizer.state[model.weight]
    inverse = 1.0 / ((state["exp_avg_sq"] / (1 - 0.999)).sqrt() + 1e-8)
    shifted = matrix + 0.5 * torch.eye(6, dtype=torch.float64)
    expected = float(
        torch.linalg.eigvalsh(inverse.sqrt()[:, None] * shifted * inverse.sqrt()[None, :])[-1]
    )

    row = SharpnessProbe(model, loss_fn, batches, optimizer, tol=1e-10).measure()

    assert row["sharpness"] == pytest.approx(expected, rel=1e-9)


def test_probe_cadence_and_row_keys(quadratic):
    _, model, loss_fn, batches = quadratic
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    probe = SharpnessProbe(model, loss_fn, batches, optimizer, every=3, k=2, tol=1e-8)

    rows = []
    for step in range(7):
        loss = quadratic_step(model, loss_fn, batches, optimizer)
        rows.append(probe.after_step(step, loss))

    assert [bool(row) for row in rows] == [True, False, False, True, False, False, True]
    assert set(rows[0]) == {
        "sharpness",
        "ceiling",
        "probe_hvps",
        "above_ceiling",
        "sharpness_diverged",
        "sharpness_bound",
        "sharpness_2",
    }
    assert rows[3]["sharpness_2"] == pytest.approx(4.0, rel=1e-8)
    assert all(isinstance(value, float) for value in rows[0].values())


def test_warm_start_spends_fewer_hvps(make_tanh_mlp, digits_batches):
    model = make_tanh_mlp(hidden=16)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    probe = SharpnessProbe(model, nn.functional.cross_entropy, digits_batches, optimizer, every=1)
    inputs, targets = digits_batches[0]

    hvps = []
    for step in range(54):
        optimizer.zero_grad()
        nn.functional.cross_entropy(model(inputs), targets).backward()
        optimizer.step()
        if step >= 50:
            hvps.append(probe.after_step(step)["probe_hvps"])

    assert max(hvps[1:]) < hvps[0]
    assert max(hvps[1:]) <= 4


def test_nan_parameter_records_divergence(quadratic):
    _, model, loss_fn, batches = quadratic
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    with torch.no_grad():
        model.weight[2] = math.nan

    row = SharpnessProbe(model, loss_fn, batches, optimizer).measure()

    assert math.isnan(row["sharpness"])
    assert row["sharpness_diverged"] == 1.0
    assert row["above_ceiling"] == 0.0
    assert row["ceiling"] == pytest.approx(20.0)


def test_non_finite_training_loss_records_divergence(quadratic):
    _, model, loss_fn, batches = quadratic
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)

    row = SharpnessProbe(model, loss_fn, batches, optimizer).after_step(0, loss=math.inf)

    assert math.isnan(row["sharpness"])
    assert row["sharpness_diverged"] == 1.0
    assert row["probe_hvps"] == 0.0


def test_divergent_training_run_is_recorded(quadratic):
    _, model, loss_fn, batches = quadratic
    optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
    probe = SharpnessProbe(model, loss_fn, batches, optimizer, every=50)

    rows = []
    for step in range(1000):
        loss = quadratic_step(model, loss_fn, batches, optimizer)
        rows.append(probe.after_step(step, loss))

    probed = [row for row in rows if row]
    assert probed[0]["above_ceiling"] == 1.0
    assert probed[-1]["sharpness_diverged"] == 1.0
    assert math.isnan(probed[-1]["sharpness"])


def test_unsupported_optimizer_rejected(quadratic):
    _, model, loss_fn, batches = quadratic

    with pytest.raises(TypeError, match="no stability ceiling is known for RMSprop"):
        SharpnessProbe(model, loss_fn, batches, torch.optim.RMSprop(model.parameters()))


def test_groups_with_different_momentum_rejected(make_tanh_mlp, digits_batches):
    model = make_tanh_mlp()
    optimizer = torch.optim.SGD(
        [{"params": model[0].parameters(), "momentum": 0.9}, {"params": model[2].parameters()}],
        lr=0.1,
    )

    with pytest.raises(ValueError, match="differ in momentum"):
        SharpnessProbe(model, nn.functional.cross_entropy, digits_batches, optimizer)


def test_parameters_outside_optimizer_rejected(make_tanh_mlp, digits_batches):
    model = make_tanh_mlp()
    optimizer = torch.optim.SGD(model[2].parameters(), lr=0.1)

    with pytest.raises(ValueError, match="2 of 4 trainable parameters are not in the optimizer"):
        SharpnessProbe(model, nn.functional.cross_entropy, digits_batches, optimizer)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"every": 0}, "every must be an integer >= 1; got 0"),
        ({"every": -5}, "every must be an integer >= 1; got -5"),
        ({"k": 0}, "k must be an integer >= 1; got 0"),
        ({"k": 7}, "k must be <= 6"),
        ({"tol": 0.0}, "tol must be a finite number > 0; got 0.0"),
        ({"max_iter": 0}, "max_iter must be an integer >= 1; got 0"),
    ],
)
def test_invalid_options_rejected(options, message, quadratic):
    _, model, loss_fn, batches = quadratic
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)

    with pytest.raises(ValueError, match=message):
        SharpnessProbe(model, loss_fn, batches, optimizer, **options)


def test_every_of_wrong_type_rejected(quadratic):
    _, model, loss_fn, batches = quadratic

    with pytest.raises(TypeError, match="every must be an integer"):
        SharpnessProbe(
            model, loss_fn, batches, torch.optim.SGD(model.parameters(), lr=0.1), every=2.5
        )


def test_empty_batches_rejected(quadratic):
    _, model, loss_fn, _ = quadratic

    with pytest.raises(ValueError, match="batches is empty"):
        SharpnessProbe(model, loss_fn, [], torch.optim.SGD(model.parameters(), lr=0.1))


def test_model_without_trainable_parameters_rejected(digits_batches):
    model = nn.Linear(64, 10).double().requires_grad_(False)
    optimizer = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=0.1)

    with pytest.raises(ValueError, match="no trainable parameters"):
        SharpnessProbe(model, nn.functional.cross_entropy, digits_batches, optimizer)


def test_probe_with_constant_weight_decay_groups():
    """Scheduler(weight_decay="constant") keeps groups with one wd_0 on one float."""
    import decaylab as dl
    from decaylab.torch import Scheduler, layerwise_param_groups

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 6), nn.Tanh(), nn.Linear(6, 3), nn.Tanh(), nn.Linear(3, 1))
    groups = layerwise_param_groups(model, ["0", "2", "4"], top_lr=0.1, alpha=0.7, weight_decay=0.01)
    optimizer = torch.optim.SGD(groups, lr=0.1, momentum=0.9)
    scheduler = Scheduler(optimizer, dl.ExponentialDecay(0.1, rate=0.37), weight_decay="constant")
    batches = [(torch.randn(16, 4), torch.randn(16, 1))]
    probe = SharpnessProbe(model, nn.functional.mse_loss, batches, optimizer, every=1)

    for step in range(4):
        optimizer.zero_grad()
        nn.functional.mse_loss(model(batches[0][0]), batches[0][1]).backward()
        optimizer.step()
        row = probe.after_step(step)
        scheduler.step()
        decays = {group["weight_decay"] for group in optimizer.param_groups}
        assert len(decays) == 1
        assert math.isfinite(row["sharpness"])
