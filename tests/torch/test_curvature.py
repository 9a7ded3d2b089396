"""Hessian-vector products, Lanczos eigenvalues and Hutchinson traces against exact values."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from torch import nn

from decaylab.torch.curvature import (
    HVP_METHODS,
    HessianOperator,
    NonFiniteError,
    hessian_trace,
    hvp,
    lanczos,
    top_hessian_eigenvalues,
)

torch.set_num_threads(2)
cross_entropy = nn.functional.cross_entropy


def power_iteration_hvps(
    operator: HessianOperator, target: float, rtol: float, cap: int = 500
) -> int:
    """Count the products power iteration needs to reach ``rtol`` of ``target``."""
    generator = torch.Generator().manual_seed(0)
    v = torch.randn(operator.n_params, generator=generator, dtype=operator.dtype)
    v /= v.norm()
    for count in range(1, cap + 1):
        w = operator.matvec(v)
        estimate = float(v @ w)
        if abs(estimate - target) <= rtol * abs(target):
            return count
        v = w / w.norm()
    raise AssertionError(f"power iteration did not reach rtol={rtol} in {cap} products")


def train_steps(model: nn.Module, batches, steps: int, lr: float = 0.5) -> None:
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    inputs = torch.cat([x for x, _ in batches])
    targets = torch.cat([y for _, y in batches])
    for _ in range(steps):
        optimizer.zero_grad()
        cross_entropy(model(inputs), targets).backward()
        optimizer.step()


@pytest.fixture(scope="module")
def trained(digits_tensors, make_tanh_mlp, compute_dense_hessian):
    """A 64-16-10 tanh MLP after 50 SGD steps, its batches and its dense Hessian."""
    inputs, labels = digits_tensors
    batches = [
        (inputs[:120], labels[:120]),
        (inputs[120:220], labels[120:220]),
        (inputs[220:], labels[220:]),
    ]
    model = make_tanh_mlp(hidden=16)
    train_steps(model, batches, 50)
    return model, batches, compute_dense_hessian(model, cross_entropy, batches)


@pytest.mark.parametrize("method", HVP_METHODS)
@pytest.mark.parametrize("reuse_graph", [True, False])
def test_hvp_matches_dense_hessian(method, reuse_graph, trained):
    model, batches, dense = trained
    operator = HessianOperator(
        model, cross_entropy, batches, method=method, reuse_graph=reuse_graph
    )
    vector = torch.randn(
        operator.n_params, generator=torch.Generator().manual_seed(1), dtype=torch.float64
    )

    product = operator.matvec(vector)

    assert operator.n_hvp == 1
    torch.testing.assert_close(product, dense @ vector, rtol=1e-9, atol=1e-12)


def test_hvp_weights_batches_by_size(tanh_mlp, digits_batches):
    inputs = torch.cat([x for x, _ in digits_batches])
    targets = torch.cat([y for _, y in digits_batches])
    vector = torch.ones(sum(p.numel() for p in tanh_mlp.parameters()), dtype=torch.float64)

    split = hvp(tanh_mlp, cross_entropy, digits_batches, vector)
    whole = hvp(tanh_mlp, cross_entropy, [(inputs, targets)], vector)

    torch.testing.assert_close(split, whole, rtol=1e-10, atol=1e-12)


def test_top_three_of_quadratic_exact(make_quadratic, make_spectrum_matrix):
    spectrum = [5.0, 4.0, 3.0, 2.0, 1.0, 0.5, 0.25, -1.0]
    matrix = make_spectrum_matrix(spectrum)
    model, loss_fn, batches = make_quadratic(matrix)

    eigvals, eigvecs, n_hvp = top_hessian_eigenvalues(model, loss_fn, batches, k=3, tol=1e-10)

    torch.testing.assert_close(
        eigvals, torch.tensor([5.0, 4.0, 3.0], dtype=torch.float64), rtol=1e-10, atol=0
    )
    assert eigvecs.shape == (3, 8)
    torch.testing.assert_close(eigvecs @ matrix @ eigvecs.T, torch.diag(eigvals), rtol=0, atol=1e-9)
    assert n_hvp <= 8


def test_top_eigenvalue_is_algebraic_not_magnitude(make_quadratic, make_spectrum_matrix):
    matrix = make_spectrum_matrix([-10.0, 3.0, 2.0, 1.0, 0.5, 0.1])
    model, loss_fn, batches = make_quadratic(matrix)

    top, _, _ = top_hessian_eigenvalues(model, loss_fn, batches, k=1, tol=1e-10)
    top3, _, _ = top_hessian_eigenvalues(model, loss_fn, batches, k=3, tol=1e-10)

    assert top.tolist() == pytest.approx([3.0], rel=1e-10)
    assert top3.tolist() == pytest.approx([3.0, 2.0, 1.0], rel=1e-10)


def test_all_negative_spectrum_returns_least_negative(make_quadratic, make_spectrum_matrix):
    model, loss_fn, batches = make_quadratic(make_spectrum_matrix([-1.0, -2.0, -3.0, -40.0]))

    eigvals, _, _ = top_hessian_eigenvalues(model, loss_fn, batches, k=2, tol=1e-10)

    assert eigvals.tolist() == pytest.approx([-1.0, -2.0], rel=1e-10)


def test_warm_start_on_invariant_vector_restarts(make_quadratic):
    matrix = torch.diag(torch.tensor([1.0, 3.0, 2.0, 0.5], dtype=torch.float64))
    model, loss_fn, batches = make_quadratic(matrix)
    second_eigvec = torch.tensor([0.0, 0.0, 1.0, 0.0], dtype=torch.float64)

    eigvals, eigvecs, _ = top_hessian_eigenvalues(
        model, loss_fn, batches, k=2, tol=1e-10, init=second_eigvec
    )

    assert eigvals.tolist() == pytest.approx([3.0, 2.0], rel=1e-10)
    torch.testing.assert_close(
        eigvecs.abs(), torch.eye(4, dtype=torch.float64)[[1, 2]], rtol=0, atol=1e-8
    )


def test_mlp_eigenvalues_match_dense(trained):
    model, batches, dense = trained
    expected = torch.linalg.eigvalsh(dense).flip(0)[:3]

    eigvals, eigvecs, _ = top_hessian_eigenvalues(model, cross_entropy, batches, k=3, tol=1e-8)

    relative = (eigvals - expected).abs() / expected.abs()
    assert float(relative.max()) <= 1e-8
    assert eigvecs.dtype == torch.float64


@pytest.mark.parametrize("tol", [1e-2, 1e-3, 1e-4, 1e-6])
def test_error_bound_holds_on_mlp(tol, trained):
    model, batches, dense = trained
    truth = float(torch.linalg.eigvalsh(dense)[-1])

    eigvals, _, _ = top_hessian_eigenvalues(model, cross_entropy, batches, tol=tol)

    assert abs(float(eigvals[0]) - truth) / truth <= tol


def test_lanczos_needs_half_the_power_iteration_hvps(trained):
    model, batches, dense = trained
    truth = float(torch.linalg.eigvalsh(dense)[-1])
    operator = HessianOperator(model, cross_entropy, batches)

    power_hvps = power_iteration_hvps(operator, truth, rtol=1e-4)
    eigvals, _, lanczos_hvps = top_hessian_eigenvalues(model, cross_entropy, batches, tol=1e-4)

    assert abs(float(eigvals[0]) - truth) / truth <= 1e-4
    assert lanczos_hvps <= power_hvps / 2


def test_warm_start_needs_fewer_hvps(trained, digits_batches):
    model = copy.deepcopy(trained[0])
    _, previous, _ = top_hessian_eigenvalues(model, cross_entropy, digits_batches, tol=1e-3)
    train_steps(model, digits_batches, 1)
    truth, _, _ = top_hessian_eigenvalues(model, cross_entropy, digits_batches, tol=1e-12)

    _, _, cold_hvps = top_hessian_eigenvalues(model, cross_entropy, digits_batches, tol=1e-3)
    warm, _, warm_hvps = top_hessian_eigenvalues(
        model, cross_entropy, digits_batches, tol=1e-3, init=previous
    )

    assert warm_hvps <= 4
    assert warm_hvps < cold_hvps
    assert abs(float(warm[0] - truth[0])) / float(truth[0]) <= 1e-3


def test_max_iter_cap_warns(make_quadratic, make_spectrum_matrix):
    model, loss_fn, batches = make_quadratic(make_spectrum_matrix([float(i) for i in range(1, 41)]))

    with pytest.warns(RuntimeWarning, match="not converged after max_iter=3"):
        eigvals, _, n_hvp = top_hessian_eigenvalues(model, loss_fn, batches, tol=1e-12, max_iter=3)

    assert n_hvp == 3
    assert eigvals.shape == (1,)


def test_lanczos_reports_bounds_and_convergence():
    matrix = torch.diag(torch.arange(1.0, 21.0, dtype=torch.float64))

    result = lanczos(lambda v: matrix @ v, 20, k=2, tol=1e-9)

    assert result.converged
    assert result.eigvals.tolist() == pytest.approx([20.0, 19.0], rel=1e-9)
    assert float(result.error_bounds.max()) <= 1e-9


def test_curvature_restores_train_mode_and_buffers(digits_batches):
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Linear(64, 8), nn.BatchNorm1d(8), nn.Tanh(), nn.Dropout(0.5), nn.Linear(8, 10)
    )
    model.double().train()
    running_mean = model[1].running_mean.clone()

    first, _, _ = top_hessian_eigenvalues(model, cross_entropy, digits_batches, tol=1e-8)
    second, _, _ = top_hessian_eigenvalues(model, cross_entropy, digits_batches, tol=1e-8)
    trace = hessian_trace(model, cross_entropy, digits_batches, n_probes=4)

    assert all(module.training for module in model.modules())
    assert torch.equal(model[1].running_mean, running_mean)
    assert torch.equal(first, second)
    assert math.isfinite(trace.estimate)


def test_hutchinson_exact_on_diagonal_quadratic(make_quadratic):
    diagonal = torch.tensor([4.0, -1.0, 2.5, 0.5, 3.0], dtype=torch.float64)
    model, loss_fn, batches = make_quadratic(torch.diag(diagonal))

    trace = hessian_trace(model, loss_fn, batches, n_probes=12)

    # Rademacher probes have z_i**2 == 1, so every sample equals the trace.
    assert trace.estimate == pytest.approx(9.0, rel=1e-12)
    assert trace.stderr == pytest.approx(0.0, abs=1e-12)
    assert trace.n_hvp == 12


def test_hutchinson_matches_dense_trace(trained):
    model, batches, dense = trained
    truth = float(torch.trace(dense))

    trace = hessian_trace(model, cross_entropy, batches, n_probes=200)

    assert trace.stderr > 0
    assert abs(trace.estimate - truth) <= 4 * trace.stderr
    assert trace.stderr <= 0.1 * abs(truth)


def test_hutchinson_stops_early_with_rtol(tanh_mlp, digits_batches):
    trace = hessian_trace(tanh_mlp, cross_entropy, digits_batches, n_probes=500, rtol=0.05)

    assert 10 <= trace.n_hvp < 500
    assert trace.stderr <= 0.05 * abs(trace.estimate)


def test_no_trainable_parameters_rejected(digits_batches):
    model = nn.Linear(64, 10).double().requires_grad_(False)

    with pytest.raises(ValueError, match="no trainable parameters"):
        top_hessian_eigenvalues(model, cross_entropy, digits_batches)


@pytest.mark.parametrize("batches", [[], ()])
def test_empty_batches_rejected(batches, tanh_mlp):
    with pytest.raises(ValueError, match="batches is empty"):
        top_hessian_eigenvalues(tanh_mlp, cross_entropy, batches)


def test_bare_batch_tuple_rejected(tanh_mlp, digits_batches):
    with pytest.raises(TypeError, match=r"wrap it in a list"):
        hessian_trace(tanh_mlp, cross_entropy, digits_batches[0])


@pytest.mark.parametrize("k", [0, -1, 1211])
def test_k_out_of_range_rejected(k, tanh_mlp, digits_batches):
    with pytest.raises(ValueError, match=f"k must be.*got.*{k}"):
        top_hessian_eigenvalues(tanh_mlp, cross_entropy, digits_batches, k=k)


@pytest.mark.parametrize("tol", [0.0, -1e-3, math.nan, math.inf])
def test_nonpositive_tol_rejected(tol, tanh_mlp, digits_batches):
    with pytest.raises(ValueError, match="tol must be"):
        top_hessian_eigenvalues(tanh_mlp, cross_entropy, digits_batches, tol=tol)


def test_k_of_wrong_type_rejected(tanh_mlp, digits_batches):
    with pytest.raises(TypeError, match="k must be an integer"):
        top_hessian_eigenvalues(tanh_mlp, cross_entropy, digits_batches, k=1.5)


def test_init_of_wrong_shape_rejected(tanh_mlp, digits_batches):
    with pytest.raises(ValueError, match=r"init must have shape \(1210,\)"):
        top_hessian_eigenvalues(tanh_mlp, cross_entropy, digits_batches, init=torch.ones(7))


def test_non_finite_loss_raises(tanh_mlp, digits_batches):
    inputs, targets = digits_batches[0]
    poisoned = [(inputs.clone().fill_(math.nan), targets)]

    with pytest.raises(NonFiniteError, match="loss is not finite"):
        top_hessian_eigenvalues(tanh_mlp, cross_entropy, poisoned)


def test_non_finite_parameters_raise(tanh_mlp, digits_batches):
    with torch.no_grad():
        tanh_mlp[0].weight[0, 0] = math.inf

    with pytest.raises(NonFiniteError, match="NaN or infinite parameters"):
        hessian_trace(tanh_mlp, cross_entropy, digits_batches)


def test_unknown_hvp_method_rejected(tanh_mlp, digits_batches):
    with pytest.raises(ValueError, match="method must be one of"):
        HessianOperator(tanh_mlp, cross_entropy, digits_batches, method="finite_difference")
