"""The monitor protocol that training loops call around each optimizer step.

A training loop calls, for update ``t`` (the number of updates already
done)::

    loss.backward()
    monitor.before_step(t)          # gradients are ready, weights are w_t
    optimizer.step()
    row = monitor.after_step(t, loss.item())   # weights are w_{t+1}
    scheduler.step()                # after the monitor, so it reads lr(t)

``after_step`` returns a flat row of plain floats (possibly empty) that the
caller merges into its per-step record. This module also contains the small
helpers that every monitor in :mod:`decaylab.torch` shares.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, Callable, Union

import torch
from torch import nn

__all__ = ["Monitor", "Batch", "LossFn"]

#: One ``(inputs, targets)`` minibatch.
Batch = tuple[torch.Tensor, torch.Tensor]

#: ``loss_fn(model(inputs), targets)`` returns a scalar tensor.
LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

ParamsLike = Union[nn.Module, Iterable[torch.Tensor]]


class Monitor:
    """Base class of the per-step monitors.

    Subclasses override :meth:`after_step` and, when they need the
    gradients or the weights before the update, :meth:`before_step`.

    >>> class LossOnly(Monitor):
    ...     def after_step(self, step, loss=None):
    ...         return {} if loss is None else {"train_loss": float(loss)}
    >>> LossOnly().after_step(0, 0.5)
    {'train_loss': 0.5}
    """

    def before_step(self, step: int) -> None:
        """Observe update ``step`` after ``loss.backward()``, before ``optimizer.step()``."""

    def after_step(self, step: int, loss: float | None = None) -> dict[str, float]:
        """Observe update ``step`` after ``optimizer.step()``; return a row of floats."""
        raise NotImplementedError(f"{type(self).__name__} must implement after_step")


def trainable_parameters(model_or_params: ParamsLike, owner: str) -> list[torch.Tensor]:
    """Return the tensors with ``requires_grad`` of a module or an iterable.

    Raises ``TypeError`` for anything else and ``ValueError`` when none is
    trainable. Duplicates (tied weights) are kept once, in first-seen order.
    """
    if isinstance(model_or_params, nn.Module):
        candidates: Iterable[Any] = model_or_params.parameters()
    elif isinstance(model_or_params, torch.Tensor):
        candidates = [model_or_params]
    elif isinstance(model_or_params, Iterable):
        candidates = model_or_params
    else:
        raise TypeError(
            f"{owner}: expected an nn.Module or an iterable of tensors; "
            f"got {type(model_or_params).__name__}"
        )

    params: list[torch.Tensor] = []
    seen: set[int] = set()
    for item in candidates:
        if not isinstance(item, torch.Tensor):
            raise TypeError(
                f"{owner}: parameters must be tensors; got an item of type {type(item).__name__}"
            )
        if item.requires_grad and id(item) not in seen:
            seen.add(id(item))
            params.append(item)

    if not params:
        raise ValueError(
            f"{owner}: the model has no trainable parameters (none with requires_grad=True); "
            "pass a model or tensors that the optimizer updates"
        )
    return params


def check_batches(batches: Any, owner: str) -> list[Batch]:
    """Return ``batches`` as a list of ``(inputs, targets)`` pairs, or raise."""
    if isinstance(batches, tuple) and len(batches) == 2 and isinstance(batches[0], torch.Tensor):
        raise TypeError(
            f"{owner}: batches must be a list of (inputs, targets) tuples; got one tuple "
            "of tensors, so wrap it in a list: [(inputs, targets)]"
        )
    if not isinstance(batches, Sequence):
        raise TypeError(
            f"{owner}: batches must be a list of (inputs, targets) tuples; "
            f"got {type(batches).__name__}"
        )
    if len(batches) == 0:
        raise ValueError(f"{owner}: batches is empty; pass at least one (inputs, targets) tuple")

    checked: list[Batch] = []
    for index, batch in enumerate(batches):
        if not (isinstance(batch, (tuple, list)) and len(batch) == 2):
            raise TypeError(
                f"{owner}: batches[{index}] must be an (inputs, targets) pair; "
                f"got {type(batch).__name__}"
            )
        inputs, targets = batch
        if not isinstance(inputs, torch.Tensor) or inputs.dim() == 0 or len(inputs) == 0:
            raise ValueError(
                f"{owner}: batches[{index}] inputs must be a tensor with at least one example "
                "along dimension 0"
            )
        checked.append((inputs, targets))
    return checked


@contextlib.contextmanager
def eval_mode(model: nn.Module) -> Iterator[None]:
    """Put every submodule in eval mode, then restore each one's own flag.

    Eval mode makes BatchNorm use its running statistics (and leave them
    unchanged) and turns dropout off, so a measurement is deterministic and
    has no side effect on training.
    """
    flags = [(module, module.training) for module in model.modules()]
    model.eval()
    try:
        yield
    finally:
        for module, training in flags:
            module.training = training


def all_finite(tensors: Sequence[torch.Tensor]) -> bool:
    """Return whether every entry of every tensor is finite."""
    return all(bool(torch.isfinite(t.detach()).all()) for t in tensors)
