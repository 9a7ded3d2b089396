"""Lanczos iteration with full re-orthogonalisation for the top eigenpairs.

Works on any symmetric operator given as a ``matvec`` on flat float tensors;
:func:`decaylab.torch.top_hessian_eigenvalues` applies it to the Hessian.
"""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Callable
from typing import NamedTuple

import numpy as np
import torch

from decaylab._validation import InvalidParameterError, check_all, integer, real

__all__ = ["LanczosResult", "lanczos"]

logger = logging.getLogger(__name__)


class LanczosResult(NamedTuple):
    """Top eigenpairs of a symmetric operator found by :func:`lanczos`.

    ``eigvals`` (float64, descending) and ``eigvecs`` (rows, unit norm) are
    Ritz pairs; ``error_bounds`` are their relative error bounds (see
    :func:`lanczos`); ``n_matvec`` counts operator products.
    """

    eigvals: torch.Tensor
    eigvecs: torch.Tensor
    n_matvec: int
    error_bounds: torch.Tensor
    converged: bool


def lanczos(
    matvec: Callable[[torch.Tensor], torch.Tensor],
    n: int,
    *,
    k: int = 1,
    tol: float = 1e-3,
    init: torch.Tensor | None = None,
    max_iter: int | None = None,
    min_iter: int | None = None,
    seed: int = 0,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str = "cpu",
) -> LanczosResult:
    """Find the ``k`` largest algebraic eigenvalues of a symmetric operator.

    Lanczos with full re-orthogonalisation: each new basis vector is
    orthogonalised twice against all earlier ones. After each product the
    ``k`` largest Ritz values ``theta_i`` of the tridiagonal matrix are
    checked against the relative error bound

        min(r_i, r_i**2 / gap_i) / |theta_i| <= tol

    where ``r_i = ||A x_i - theta_i x_i||`` is the Ritz residual. Some
    eigenvalue lies within ``r_i`` of ``theta_i``, and within ``r_i**2 /
    gap_i`` when ``gap_i`` separates ``theta_i`` from the rest of the
    spectrum. ``gap_i`` is estimated from the other Ritz values (distance
    less both residuals) and used once ``k + 2`` of them exist, so the
    gap-aware bound is an estimate, not a guarantee. When ``|theta_i|`` is
    below ``1e-8`` times the largest ``|theta|``, the bound is taken
    relative to that largest value.

    Any Krylov method can stop on an eigenvalue below the top one whose
    direction has not yet emerged from the start vector. ``min_iter``
    products are therefore made before the first convergence check:
    by default ``max(2 k + 10, 12)`` from a random start and ``k + 2``
    from ``init``. On tanh MLPs trained on digits (150 cases), a minimum of
    1 gave a top eigenvalue outside ``tol = 1e-2`` in 11 cases; 12 in none.

    ``init`` (shape ``(n,)`` or ``(m, n)``) warm-starts the iteration from
    the sum of its unit-normalised rows; otherwise the start is a seeded
    Gaussian vector. When the Krylov space becomes invariant before ``k``
    values are found, a new seeded random direction continues it.
    ``max_iter`` (default ``min(n, max(100, 20 k))``) caps the products;
    if it stops the iteration first, a ``RuntimeWarning`` is issued and the
    best estimates are returned with ``converged=False``.

    >>> a = torch.diag(torch.tensor([-10.0, 1.0, 2.0, 3.0], dtype=torch.float64))
    >>> result = lanczos(lambda v: a @ v, 4, k=2, tol=1e-10)
    >>> result.eigvals.tolist()
    [3.0, 2.0]
    """
    _check_lanczos_arguments(n, k, tol, max_iter, min_iter)
    max_iter = min(n, max(100, 20 * k)) if max_iter is None else min(max_iter, n)
    if min_iter is None:
        min_iter = k + 2 if init is not None else max(2 * k + 10, 12)
    min_iter = min(max(min_iter, k), max_iter)
    generator = torch.Generator().manual_seed(seed)
    basis = torch.zeros(max_iter, n, dtype=dtype, device=device)
    alphas: list[float] = []
    betas: list[float] = []
    q = _start_vector(init, n, generator, dtype, device)

    theta = np.zeros(0)
    ritz = np.zeros((0, 0))
    bounds = np.full(k, np.inf)
    converged = False
    breakdown = 10.0 * torch.finfo(dtype).eps

    for j in range(max_iter):
        # Extend the Krylov basis by one product.
        basis[j] = q
        w = matvec(q).to(dtype)
        alpha = float(torch.dot(q, w))
        w = w - alpha * q
        if j > 0:
            w = w - betas[-1] * basis[j - 1]
        for _ in range(2):
            w = w - basis[: j + 1].T @ (basis[: j + 1] @ w)
        beta = float(torch.linalg.vector_norm(w))
        alphas.append(alpha)

        # Solve the tridiagonal eigenproblem and bound the top Ritz values.
        theta, ritz = _tridiagonal_eigh(alphas, betas)
        scale = max(float(np.max(np.abs(theta))), 0.0)
        if beta <= breakdown * max(scale, 1.0):
            beta = 0.0
        if j + 1 >= min_iter:
            bounds = _relative_bounds(theta, ritz, beta, k, scale)
            if bool(np.all(bounds <= tol)) or j + 1 == n:
                converged = True
                break

        # Continue from the residual, or from a fresh direction on breakdown.
        if beta == 0.0:
            q = _orthogonal_random(basis[: j + 1], generator, dtype, device)
        else:
            q = w / beta
        betas.append(beta)

    n_matvec = len(alphas)
    if not converged:
        warnings.warn(
            f"lanczos: not converged after max_iter={max_iter} products; relative error "
            f"bounds {np.round(bounds, 8).tolist()} exceed tol={tol}; raise max_iter or tol",
            RuntimeWarning,
            stacklevel=2,
        )

    # NOTE: with full re-orthogonalisation one start vector finds each distinct
    # eigenvalue once, so an exactly repeated eigenvalue can be missing for k > 1.
    # Ritz vectors of the k largest Ritz values, in descending order.
    order = np.argsort(theta)[::-1][:k]
    coefficients = torch.as_tensor(ritz[:, order].T.copy(), dtype=dtype, device=device)
    eigvecs = coefficients @ basis[:n_matvec]
    eigvecs = eigvecs / torch.linalg.vector_norm(eigvecs, dim=1, keepdim=True)
    eigvecs = eigvecs * _sign_convention(eigvecs)
    eigvals = torch.as_tensor(theta[order].copy(), dtype=torch.float64)
    return LanczosResult(
        eigvals, eigvecs, n_matvec, torch.as_tensor(bounds, dtype=torch.float64), converged
    )


def _check_lanczos_arguments(
    n: int, k: int, tol: float, max_iter: int | None, min_iter: int | None
) -> None:
    rules = {"k": integer(1), "tol": real(0.0, low_open=True)}
    check_all("lanczos", rules, (), {"k": k, "tol": tol})
    if k > n:
        raise InvalidParameterError(
            f"lanczos: k must be <= {n}, the dimension of the operator; got k={k}", "k"
        )
    if max_iter is not None:
        check_all("lanczos", {"max_iter": integer(k)}, (), {"max_iter": max_iter})
    if min_iter is not None:
        check_all("lanczos", {"min_iter": integer(1)}, (), {"min_iter": min_iter})


def _start_vector(
    init: torch.Tensor | None,
    n: int,
    generator: torch.Generator,
    dtype: torch.dtype,
    device: torch.device | str,
) -> torch.Tensor:
    if init is None:
        start = torch.randn(n, generator=generator, dtype=torch.float64)
        return (start / torch.linalg.vector_norm(start)).to(dtype=dtype, device=device)

    if not isinstance(init, torch.Tensor):
        raise TypeError(f"init must be a tensor of shape (n,) or (m, n); got {type(init).__name__}")
    rows = init.detach().reshape(1, -1) if init.dim() == 1 else init.detach()
    if rows.dim() != 2 or rows.shape[1] != n or rows.shape[0] == 0:
        raise ValueError(
            f"init must have shape ({n},) or (m, {n}) with m >= 1; got {tuple(init.shape)}"
        )
    rows = rows.to(dtype=dtype, device=device)
    if not bool(torch.isfinite(rows).all()):
        raise ValueError("init has NaN or infinite entries; pass a finite tensor or init=None")
    norms = torch.linalg.vector_norm(rows, dim=1, keepdim=True)
    if bool((norms == 0).any()):
        raise ValueError("init has a zero row; every row must be a nonzero vector")
    start = (rows / norms).sum(dim=0)
    norm = torch.linalg.vector_norm(start)
    if float(norm) <= 1e-6 * math.sqrt(rows.shape[0]):
        # The rows cancel out, so their first one carries the warm start.
        start, norm = rows[0] / norms[0], torch.ones((), dtype=dtype, device=device)
    return start / norm


def _orthogonal_random(
    basis: torch.Tensor, generator: torch.Generator, dtype: torch.dtype, device: torch.device | str
) -> torch.Tensor:
    q = torch.randn(basis.shape[1], generator=generator, dtype=torch.float64).to(
        dtype=dtype, device=device
    )
    for _ in range(2):
        q = q - basis.T @ (basis @ q)
    return q / torch.linalg.vector_norm(q)


def _tridiagonal_eigh(alphas: list[float], betas: list[float]) -> tuple[np.ndarray, np.ndarray]:
    size = len(alphas)
    tridiagonal = np.diag(np.asarray(alphas, dtype=np.float64))
    if size > 1:
        off = np.asarray(betas[: size - 1], dtype=np.float64)
        tridiagonal += np.diag(off, 1) + np.diag(off, -1)
    theta, ritz = np.linalg.eigh(tridiagonal)
    return theta, ritz


def _relative_bounds(
    theta: np.ndarray, ritz: np.ndarray, beta: float, k: int, scale: float
) -> np.ndarray:
    order = np.argsort(theta)[::-1][:k]
    all_residuals = beta * np.abs(ritz[-1, :])
    residuals = all_residuals[order]
    bounds = residuals.copy()
    if len(theta) >= k + 2:
        for index, (i, residual) in enumerate(zip(order, residuals)):
            others = np.arange(len(theta)) != i
            gap = float(np.min(np.abs(theta[others] - theta[i]) - all_residuals[others])) - residual
            if gap > 0:
                bounds[index] = min(residual, residual**2 / gap)
    magnitude = np.maximum(np.abs(theta[order]), 1e-8 * scale)
    with np.errstate(divide="ignore", invalid="ignore"):
        relative = np.where(bounds == 0.0, 0.0, bounds / magnitude)
    return relative


def _sign_convention(vectors: torch.Tensor) -> torch.Tensor:
    # Make the entry of largest magnitude of each row positive, so repeated
    # runs and warm starts return the same vectors.
    index = vectors.abs().argmax(dim=1, keepdim=True)
    signs = torch.sign(vectors.gather(1, index))
    return torch.where(signs == 0, torch.ones_like(signs), signs)
