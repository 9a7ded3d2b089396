"""Fixtures for the diagnostics tests: quadratic models, a digits MLP, dense Hessians."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from torch import nn


class QuadraticModel(nn.Module):
    """A model whose output is its weight vector, for losses ``0.5 w^T A w``."""

    def __init__(self, initial: torch.Tensor) -> None:
        super().__init__()
        self.weight = nn.Parameter(initial.clone())

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.weight


def quadratic_problem(matrix: torch.Tensor, seed: int = 0):
    """Return ``(model, loss_fn, batches)`` whose loss Hessian is exactly ``matrix``."""
    generator = torch.Generator().manual_seed(seed)
    n = matrix.shape[0]
    model = QuadraticModel(torch.randn(n, generator=generator, dtype=matrix.dtype))

    def loss_fn(weight: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return 0.5 * weight @ matrix @ weight

    batches = [
        (torch.zeros(3, 1, dtype=matrix.dtype), torch.zeros(3)),
        (torch.zeros(5, 1, dtype=matrix.dtype), torch.zeros(5)),
    ]
    return model, loss_fn, batches


def symmetric_with_eigenvalues(eigenvalues: list[float], seed: int = 0) -> torch.Tensor:
    """Return a float64 symmetric matrix with the given spectrum and random eigenvectors."""
    generator = torch.Generator().manual_seed(seed)
    n = len(eigenvalues)
    basis, _ = torch.linalg.qr(torch.randn(n, n, generator=generator, dtype=torch.float64))
    return basis @ torch.diag(torch.tensor(eigenvalues, dtype=torch.float64)) @ basis.T


@pytest.fixture(scope="session")
def digits_tensors() -> tuple[torch.Tensor, torch.Tensor]:
    """The first 300 scikit-learn digits, pixels scaled to [0, 1], as float64."""
    from sklearn.datasets import load_digits

    images, labels = load_digits(return_X_y=True)
    inputs = torch.tensor(images[:300] / 16.0, dtype=torch.float64)
    return inputs, torch.tensor(labels[:300])


def split_batches(
    inputs: torch.Tensor, labels: torch.Tensor
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Split 300 examples into three uneven batches of 120, 100 and 80."""
    return [
        (inputs[:120], labels[:120]),
        (inputs[120:220], labels[120:220]),
        (inputs[220:], labels[220:]),
    ]


@pytest.fixture()
def digits_batches(digits_tensors) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Three uneven batches (120, 100, 80 examples) of the digits subset."""
    return split_batches(*digits_tensors)


def build_tanh_mlp(
    hidden: int = 16, seed: int = 0, dtype: torch.dtype = torch.float64
) -> nn.Sequential:
    """A 64-hidden-10 tanh MLP with seeded weights."""
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(64, hidden), nn.Tanh(), nn.Linear(hidden, 10)).to(dtype)


@pytest.fixture()
def tanh_mlp() -> nn.Sequential:
    """A 64-16-10 tanh MLP in float64 (1,210 parameters)."""
    return build_tanh_mlp()


def dense_hessian(model: nn.Module, loss_fn: Callable, batches) -> torch.Tensor:
    """The dense Hessian of the example-weighted batch loss, by torch.func."""
    names = [name for name, p in model.named_parameters() if p.requires_grad]
    shapes = [p.shape for _, p in model.named_parameters() if p.requires_grad]
    flat = torch.cat(
        [p.detach().reshape(-1) for _, p in model.named_parameters() if p.requires_grad]
    )
    total = sum(len(inputs) for inputs, _ in batches)

    def loss_of(vector: torch.Tensor) -> torch.Tensor:
        pieces = vector.split([shape.numel() for shape in shapes])
        state = {name: piece.view(shape) for name, piece, shape in zip(names, pieces, shapes)}
        value = 0.0
        for inputs, targets in batches:
            outputs = torch.func.functional_call(model, state, (inputs,))
            value = value + len(inputs) / total * loss_fn(outputs, targets)
        return value

    was_training = model.training
    model.eval()
    try:
        return torch.func.hessian(loss_of)(flat)
    finally:
        model.train(was_training)


@pytest.fixture(scope="session")
def make_quadratic():
    """Factory: ``make_quadratic(matrix)`` -> ``(model, loss_fn, batches)``."""
    return quadratic_problem


@pytest.fixture(scope="session")
def make_spectrum_matrix():
    """Factory: ``make_spectrum_matrix(eigenvalues)`` -> symmetric float64 matrix."""
    return symmetric_with_eigenvalues


@pytest.fixture(scope="session")
def make_tanh_mlp():
    """Factory: ``make_tanh_mlp(hidden=16, seed=0, dtype=float64)`` -> tanh MLP."""
    return build_tanh_mlp


@pytest.fixture(scope="session")
def compute_dense_hessian():
    """Factory: ``compute_dense_hessian(model, loss_fn, batches)`` -> dense Hessian."""
    return dense_hessian
