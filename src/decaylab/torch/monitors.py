"""StepMonitor: per-update learning rate, displacement and gradient norm.

The displacement ("learning momentum") of update ``t`` is
``m_t = ||w_{t+1} - w_t||_2`` over the monitored parameters, where ``w_t``
are the weights that update ``t`` starts from. For plain SGD without weight
decay ``m_t = lr_t * ||g_t||``; momentum, weight decay and Adam change the
ratio ``m_t / (lr_t * ||g_t||)``, and a learning-rate drop shows up in it.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any, Literal

import torch

from decaylab._validation import check_all, integer, real
from decaylab.torch._monitor import Monitor, ParamsLike, trainable_parameters
from decaylab.torch.optim import VelocitySGD

__all__ = ["LRDrop", "StepMonitor"]

logger = logging.getLogger(__name__)

DisplacementMethod = Literal["auto", "snapshot"]

_RULES = {
    "drop_threshold": real(0.0, 1.0, low_open=True, high_open=True),
    "settle_steps": integer(1),
    "window": integer(1),
}


@dataclass(frozen=True)
class LRDrop:
    """A learning-rate drop and the displacement overshoot that followed it.

    ``step`` is the first update that used ``lr_after``. ``steady_state``
    is the mean displacement over the ``window`` updates that follow the
    first ``settle_steps`` updates after the drop, and ``overshoot`` is the
    excess distance travelled in those first ``settle_steps`` updates,
    ``sum(m_t - steady_state)``. ``overshoot_steps`` is ``overshoot`` in
    units of ``steady_state`` (updates' worth of extra distance), and
    ``peak_ratio`` is ``max(m_t) / steady_state`` over the settle steps.
    ``status`` is ``"complete"``, ``"pending"`` (not enough updates yet;
    the measured fields are NaN) or ``"interrupted"`` (the learning rate
    changed again before the window ended; NaN too).
    """

    step: int
    lr_before: float
    lr_after: float
    steady_state: float
    overshoot: float
    overshoot_steps: float
    peak_ratio: float
    status: str


class StepMonitor(Monitor):
    """Record the learning rate, displacement and gradient norm of each update.

    ``after_step`` returns ``lr`` (group 0's learning rate), ``displacement``
    (``||w_{t+1} - w_t||`` over all monitored parameters), ``grad_norm``
    (``||g_t||``, read in ``before_step``), ``step_ratio`` and, per param
    group ``i``, ``lr_g{i}`` and ``displacement_g{i}``. ``step_ratio`` is
    ``displacement / sqrt(sum_i lr_i**2 * ||g_i||**2)`` with ``g_i`` the
    gradient of group ``i``: ``displacement / (lr * grad_norm)`` when all
    groups share one learning rate, and exactly 1 for plain SGD without
    weight decay. It is NaN when that denominator is 0.

    A drop is detected at update ``t`` when ``lr_t < lr_{t-1} * (1 -
    drop_threshold)``, on group 0's learning rate; :attr:`drops` lists each
    with its overshoot (see :class:`LRDrop`).

    With ``method="auto"``, groups of ``torch.optim.SGD`` and
    :class:`~decaylab.torch.optim.VelocitySGD` (the classes themselves)
    read the step without a copy of the weights. Without momentum and
    weight decay the step is ``lr * ||g||``. With heavy-ball momentum it is
    ``lr * ||momentum_buffer||`` for SGD and ``||momentum_buffer||`` (the
    velocity) for VelocitySGD. Every other case copies the weights in ``before_step`` into a
    preallocated buffer and takes the difference after the step
    (``method="snapshot"`` forces that for all groups). Adam's step could be
    rebuilt from its state too, but that takes more tensor passes than the
    copy. Cost per update, tanh MLP 64-32-10, batches of 256 digits, torch
    2.13.0 CPU, 2 threads (10th percentile of 3,000 interleaved steps): the
    copy adds 13-14 % to an SGD step (11 % to Adam's), reading the
    gradient norm or momentum buffer adds 4 % and 7 %.

    Monitored parameters must all belong to ``optimizer``.

    >>> torch.manual_seed(0) and None
    >>> model = torch.nn.Linear(4, 1)
    >>> optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    >>> monitor = StepMonitor(model, optimizer)
    >>> model(torch.randn(8, 4)).square().mean().backward()
    >>> monitor.before_step(0)
    >>> optimizer.step()
    >>> row = monitor.after_step(0)
    >>> row["lr"], round(row["step_ratio"], 6)
    (0.1, 1.0)
    """

    def __init__(
        self,
        model_or_params: ParamsLike,
        optimizer: torch.optim.Optimizer,
        *,
        drop_threshold: float = 0.05,
        settle_steps: int = 50,
        window: int = 10,
        method: DisplacementMethod = "auto",
    ) -> None:
        if not isinstance(optimizer, torch.optim.Optimizer):
            raise TypeError(
                "StepMonitor: optimizer must be a torch.optim.Optimizer; "
                f"got {type(optimizer).__name__}"
            )
        if method not in ("auto", "snapshot"):
            raise ValueError(f"StepMonitor: method must be 'auto' or 'snapshot'; got {method!r}")
        values = check_all(
            "StepMonitor",
            _RULES,
            (),
            {"drop_threshold": drop_threshold, "settle_steps": settle_steps, "window": window},
        )
        self.drop_threshold: float = values["drop_threshold"]
        self.settle_steps: int = values["settle_steps"]
        self.window: int = values["window"]
        self.method = method
        self.optimizer = optimizer
        self.params = trainable_parameters(model_or_params, "StepMonitor")
        self._group_members = self._assign_groups()

        self._snapshot: list[torch.Tensor] | None = None
        self._pending: _Pending | None = None
        self._previous_lr: float | None = None
        self._drops: list[_DropTracker] = []
        self._row_keys: list[tuple[str, str]] = []

    @property
    def drops(self) -> list[LRDrop]:
        """The learning-rate drops seen so far, oldest first."""
        return [tracker.record() for tracker in self._drops]

    def before_step(self, step: int) -> None:
        """Read the gradients and learning rates, and copy weights where needed."""
        groups = self.optimizer.param_groups
        lrs = [float(group["lr"]) for group in groups]
        grads = [p.grad for p in self.params]
        present = [g for g in grads if g is not None]
        if len(present) == len(grads):
            grad_sq = [norm * norm for norm in _norms(present)]
        else:
            present_norms = iter(_norms(present))
            grad_sq = [next(present_norms) ** 2 if g is not None else 0.0 for g in grads]

        modes = [self._mode(group) for group in groups]
        if "snapshot" in modes:
            copy_indices = [
                index
                for group_index, members in enumerate(self._group_members)
                if modes[group_index] == "snapshot"
                for index in members
            ]
            self._copy_weights(copy_indices)
        self._pending = _Pending(step, lrs, grad_sq, modes, [g is not None for g in grads])

    def after_step(self, step: int, loss: float | None = None) -> dict[str, float]:
        """Measure the update that ``optimizer.step()`` just made; return its row."""
        pending = self._pending
        if pending is None or pending.step != step:
            raise RuntimeError(
                f"StepMonitor.after_step({step}) needs a matching before_step({step}) "
                "between loss.backward() and optimizer.step()"
            )
        self._pending = None

        group_sq = [0.0] * len(self._group_members)
        grad_sq_by_group = [0.0] * len(self._group_members)
        for group_index, members in enumerate(self._group_members):
            squares = self._displacement_squares(group_index, members, pending)
            group_sq[group_index] = sum(squares)
            grad_sq_by_group[group_index] = sum(pending.grad_sq[index] for index in members)

        displacement = math.sqrt(sum(group_sq))
        grad_norm = math.sqrt(sum(pending.grad_sq))
        scale = math.sqrt(sum(lr * lr * sq for lr, sq in zip(pending.lrs, grad_sq_by_group)))
        row = {
            "lr": pending.lrs[0],
            "displacement": displacement,
            "grad_norm": grad_norm,
            "step_ratio": displacement / scale if scale > 0 else math.nan,
        }
        for group_index, lr in enumerate(pending.lrs):
            lr_key, displacement_key = self._group_keys(group_index)
            row[lr_key] = lr
            row[displacement_key] = math.sqrt(group_sq[group_index])

        self._track_drops(step, pending.lrs[0], displacement)
        return row

    def _group_keys(self, group_index: int) -> tuple[str, str]:
        while len(self._row_keys) <= group_index:
            index = len(self._row_keys)
            self._row_keys.append((f"lr_g{index}", f"displacement_g{index}"))
        return self._row_keys[group_index]

    def _assign_groups(self) -> list[list[int]]:
        group_of: dict[int, int] = {}
        for group_index, group in enumerate(self.optimizer.param_groups):
            for p in group["params"]:
                group_of.setdefault(id(p), group_index)
        missing = [index for index, p in enumerate(self.params) if id(p) not in group_of]
        if missing:
            raise ValueError(
                f"StepMonitor: {len(missing)} of {len(self.params)} trainable parameters are not "
                "in the optimizer; pass only the parameters this optimizer updates"
            )
        members: list[list[int]] = [[] for _ in self.optimizer.param_groups]
        for index, p in enumerate(self.params):
            members[group_of[id(p)]].append(index)
        return members

    def _mode(self, group: dict[str, Any]) -> str:
        kind = type(self.optimizer)
        if self.method == "snapshot" or kind not in (torch.optim.SGD, VelocitySGD):
            return "snapshot"
        if group["momentum"] == 0 and group["weight_decay"] == 0:
            return "gradient"
        if group["momentum"] != 0 and not group["nesterov"]:
            # SGD steps by lr * buffer; VelocitySGD's buffer is the step itself.
            return "buffer" if kind is torch.optim.SGD else "velocity"
        # Nesterov's step needs the previous buffer and weight decay without
        # momentum needs w_t, so both cost a copy anyway.
        return "snapshot"

    def _copy_weights(self, indices: list[int]) -> None:
        if self._snapshot is None:
            self._snapshot = [
                torch.empty_like(p, memory_format=torch.preserve_format) for p in self.params
            ]
        with torch.no_grad():
            torch._foreach_copy_(
                [self._snapshot[i] for i in indices], [self.params[i].detach() for i in indices]
            )

    def _displacement_squares(
        self, group_index: int, members: list[int], pending: _Pending
    ) -> list[float]:
        mode = pending.modes[group_index]
        lr = pending.lrs[group_index]
        if mode == "gradient":
            return [lr * lr * pending.grad_sq[index] for index in members]
        if mode in ("buffer", "velocity"):
            factor = lr * lr if mode == "buffer" else 1.0
            buffers = [
                self.optimizer.state[self.params[index]]["momentum_buffer"]
                for index in members
                if pending.had_grad[index]
            ]
            return [factor * norm * norm for norm in _norms(buffers)] if buffers else []

        assert self._snapshot is not None  # before_step copied this group
        with torch.no_grad():
            differences = [self._snapshot[index] for index in members]
            torch._foreach_sub_(differences, [self.params[index].detach() for index in members])
            return [norm * norm for norm in _norms(differences)]

    def _track_drops(self, step: int, lr: float, displacement: float) -> None:
        previous, self._previous_lr = self._previous_lr, lr
        open_tracker = (
            self._drops[-1] if self._drops and self._drops[-1].status == "pending" else None
        )
        if (
            open_tracker is not None
            and abs(lr - open_tracker.lr_after) > self.drop_threshold * open_tracker.lr_after
        ):
            open_tracker.status = "interrupted"
            open_tracker = None

        if previous is not None and lr < previous * (1.0 - self.drop_threshold):
            open_tracker = _DropTracker(step, previous, lr, self.settle_steps, self.window)
            self._drops.append(open_tracker)
            logger.debug("learning-rate drop at step %d: %g -> %g", step, previous, lr)

        if open_tracker is not None:
            open_tracker.add(displacement)


def _norms(tensors: list[torch.Tensor]) -> list[float]:
    """Return the 2-norm of each tensor as Python floats, from one fused kernel."""
    return [float(norm) for norm in torch._foreach_norm(tensors)]


@dataclass
class _Pending:
    step: int
    lrs: list[float]
    grad_sq: list[float]
    modes: list[str]
    had_grad: list[bool]


class _DropTracker:
    def __init__(
        self, step: int, lr_before: float, lr_after: float, settle_steps: int, window: int
    ) -> None:
        self.step = step
        self.lr_before = lr_before
        self.lr_after = lr_after
        self.settle_steps = settle_steps
        self.window = window
        self.displacements: list[float] = []
        self.status = "pending"

    def add(self, displacement: float) -> None:
        self.displacements.append(displacement)
        if len(self.displacements) == self.settle_steps + self.window:
            self.status = "complete"

    def record(self) -> LRDrop:
        nan = math.nan
        if self.status != "complete":
            return LRDrop(self.step, self.lr_before, self.lr_after, nan, nan, nan, nan, self.status)
        transient = self.displacements[: self.settle_steps]
        steady = sum(self.displacements[self.settle_steps :]) / self.window
        overshoot = sum(m - steady for m in transient)
        steps = overshoot / steady if steady > 0 else nan
        peak = max(transient) / steady if steady > 0 else nan
        return LRDrop(
            self.step, self.lr_before, self.lr_after, steady, overshoot, steps, peak, self.status
        )
