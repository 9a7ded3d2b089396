"""Gradient noise: the SGD temperature and the gradient noise scale.

The simple noise scale of McCandlish et al. (2018, "An empirical model of
large-batch training") is ``B_simple = tr(Sigma) / |G|^2``: ``G`` is the
full-batch gradient and ``Sigma`` the covariance of per-example gradients.
From the squared norms of two minibatch gradients of sizes ``b < B``,

    |G|^2     ~ (B |G_B|^2 - b |G_b|^2) / (B - b)
    tr(Sigma) ~ (|G_b|^2 - |G_B|^2) / (1/b - 1/B)

are unbiased, because ``E|G_b|^2 = |G|^2 + tr(Sigma) / b`` for examples
drawn independently. Their ratio is not, so the monitor smooths both
estimates with exponential moving averages before dividing.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from decaylab._validation import InvalidParameterError, check_all, integer, real
from decaylab.torch._monitor import LossFn, Monitor, eval_mode, trainable_parameters

__all__ = [
    "GradientNoiseMonitor",
    "gradient_noise_scale",
    "noise_scale_components",
    "sgd_temperature",
]

_SIZES = {"small_batch_size": integer(1), "large_batch_size": integer(2)}
_SQUARED_NORMS = {"sq_norm_small": real(0.0), "sq_norm_large": real(0.0)}


def sgd_temperature(lr: float, batch_size: int) -> float:
    """Return the SGD temperature ``lr / batch_size``.

    >>> sgd_temperature(0.1, 32)
    0.003125
    """
    values = check_all(
        "sgd_temperature",
        {"lr": real(0.0), "batch_size": integer(1)},
        (),
        {"lr": lr, "batch_size": batch_size},
    )
    return values["lr"] / values["batch_size"]


def noise_scale_components(
    sq_norm_small: float, sq_norm_large: float, small_batch_size: int, large_batch_size: int
) -> tuple[float, float]:
    """Return the unbiased estimates ``(|G|^2, tr(Sigma))`` from two batch gradients.

    ``sq_norm_small`` and ``sq_norm_large`` are ``|G_b|^2`` and ``|G_B|^2``
    for batch sizes ``b = small_batch_size < B = large_batch_size``. Either
    estimate can be negative for one noisy pair.

    >>> noise_scale_components(1.0 + 8.0 / 4, 1.0 + 8.0 / 16, 4, 16)
    (1.0, 8.0)
    """
    values = check_all(
        "noise_scale_components",
        {**_SQUARED_NORMS, **_SIZES},
        (),
        {
            "sq_norm_small": sq_norm_small,
            "sq_norm_large": sq_norm_large,
            "small_batch_size": small_batch_size,
            "large_batch_size": large_batch_size,
        },
    )
    small, large = values["small_batch_size"], values["large_batch_size"]
    if small >= large:
        raise InvalidParameterError(
            "noise_scale_components: small_batch_size must be < large_batch_size; "
            f"got small_batch_size={small}, large_batch_size={large}",
            "small_batch_size",
        )
    sq_small, sq_large = values["sq_norm_small"], values["sq_norm_large"]
    gradient_sq = (large * sq_large - small * sq_small) / (large - small)
    trace = (sq_small - sq_large) / (1.0 / small - 1.0 / large)
    return gradient_sq, trace


def gradient_noise_scale(
    sq_norm_small: float, sq_norm_large: float, small_batch_size: int, large_batch_size: int
) -> float:
    """Return ``B_simple = tr(Sigma) / |G|^2`` from one pair of batch gradients.

    NaN when the ``|G|^2`` estimate is not positive.

    >>> gradient_noise_scale(1.0 + 8.0 / 4, 1.0 + 8.0 / 16, 4, 16)
    8.0
    """
    gradient_sq, trace = noise_scale_components(
        sq_norm_small, sq_norm_large, small_batch_size, large_batch_size
    )
    return trace / gradient_sq if gradient_sq > 0 else math.nan


class GradientNoiseMonitor(Monitor):
    """Estimate the gradient noise scale on a data set every ``every`` updates.

    On a probe step it draws ``large_batch_size`` examples with replacement
    (seeded), splits them into chunks of ``small_batch_size`` and computes
    each chunk's gradient with ``torch.autograd.grad`` (``.grad`` is left
    alone), in eval mode. ``|G_B|^2`` is the squared norm of the chunks'
    mean and ``|G_b|^2`` the mean of their squared norms, so one probe costs
    one gradient over ``large_batch_size`` examples. Both estimates of
    :func:`noise_scale_components` are smoothed by bias-corrected
    exponential moving averages with decay ``ema_decay``.

    The row has ``noise_scale`` (smoothed ``tr(Sigma) / |G|^2``, NaN while
    the smoothed ``|G|^2`` is not positive) and the smoothed estimates
    ``noise_trace`` and ``grad_sq_norm``. Given ``optimizer`` and
    ``train_batch_size``, it also has ``temperature = lr /
    train_batch_size`` for param group 0. Other steps return ``{}``.
    """

    def __init__(
        self,
        model: nn.Module,
        loss_fn: LossFn,
        inputs: torch.Tensor,
        targets: torch.Tensor,
        *,
        small_batch_size: int,
        large_batch_size: int,
        every: int = 10,
        ema_decay: float = 0.9,
        optimizer: torch.optim.Optimizer | None = None,
        train_batch_size: int | None = None,
        seed: int = 0,
    ) -> None:
        rules = {**_SIZES, "every": integer(1), "ema_decay": real(0.0, 1.0, high_open=True)}
        values = check_all(
            "GradientNoiseMonitor",
            rules,
            (),
            {
                "small_batch_size": small_batch_size,
                "large_batch_size": large_batch_size,
                "every": every,
                "ema_decay": ema_decay,
            },
        )
        small, large = values["small_batch_size"], values["large_batch_size"]
        if large < 2 * small or large % small != 0:
            raise InvalidParameterError(
                "GradientNoiseMonitor: large_batch_size must be a multiple of small_batch_size, "
                f"at least twice it; got small_batch_size={small}, large_batch_size={large}",
                "large_batch_size",
            )
        if not isinstance(inputs, torch.Tensor) or not isinstance(targets, torch.Tensor):
            raise TypeError("GradientNoiseMonitor: inputs and targets must be tensors")
        if len(inputs) == 0 or len(inputs) != len(targets):
            raise ValueError(
                "GradientNoiseMonitor: inputs and targets must hold the same number (>= 1) of "
                f"examples; got {len(inputs)} and {len(targets)}"
            )
        if (optimizer is None) != (train_batch_size is None):
            raise ValueError(
                "GradientNoiseMonitor: pass both optimizer and train_batch_size for the "
                "temperature, or neither"
            )
        if train_batch_size is not None:
            check_all(
                "GradientNoiseMonitor",
                {"train_batch_size": integer(1)},
                (),
                {"train_batch_size": train_batch_size},
            )

        self.model = model
        self.loss_fn = loss_fn
        self.inputs = inputs
        self.targets = targets
        self.params = trainable_parameters(model, "GradientNoiseMonitor")
        self.small_batch_size: int = small
        self.large_batch_size: int = large
        self.every: int = values["every"]
        self.ema_decay: float = values["ema_decay"]
        self.optimizer = optimizer
        self.train_batch_size = train_batch_size
        self._generator = torch.Generator().manual_seed(seed)
        self._ema_gradient_sq = 0.0
        self._ema_trace = 0.0
        self._updates = 0

    def after_step(self, step: int, loss: float | None = None) -> dict[str, float]:
        """Probe when ``step % every == 0``; otherwise return ``{}``."""
        if step % self.every != 0:
            return {}
        return self.measure()

    def measure(self) -> dict[str, float]:
        """Draw fresh batches, update the moving averages and return the row."""
        sq_small, sq_large = self.squared_norms()
        gradient_sq, trace = noise_scale_components(
            sq_small, sq_large, self.small_batch_size, self.large_batch_size
        )

        decay = self.ema_decay
        self._ema_gradient_sq = decay * self._ema_gradient_sq + (1.0 - decay) * gradient_sq
        self._ema_trace = decay * self._ema_trace + (1.0 - decay) * trace
        self._updates += 1
        correction = 1.0 - decay**self._updates
        smoothed_gradient_sq = self._ema_gradient_sq / correction
        smoothed_trace = self._ema_trace / correction

        row = {
            "noise_scale": smoothed_trace / smoothed_gradient_sq
            if smoothed_gradient_sq > 0
            else math.nan,
            "noise_trace": smoothed_trace,
            "grad_sq_norm": smoothed_gradient_sq,
        }
        if self.optimizer is not None and self.train_batch_size is not None:
            row["temperature"] = sgd_temperature(
                float(self.optimizer.param_groups[0]["lr"]), self.train_batch_size
            )
        return row

    def squared_norms(self) -> tuple[float, float]:
        """Return ``(|G_b|^2, |G_B|^2)`` for one fresh draw of examples."""
        indices = torch.randint(
            len(self.inputs), (self.large_batch_size,), generator=self._generator
        )
        chunks = indices.to(self.inputs.device).split(self.small_batch_size)
        mean_gradient: list[torch.Tensor] | None = None
        sq_small = 0.0
        with eval_mode(self.model):
            for chunk in chunks:
                loss = self.loss_fn(self.model(self.inputs[chunk]), self.targets[chunk])
                raw = torch.autograd.grad(loss, self.params, allow_unused=True)
                grads = [torch.zeros_like(p) if g is None else g for g, p in zip(raw, self.params)]
                sq_small += sum(float(norm) ** 2 for norm in torch._foreach_norm(grads))
                if mean_gradient is None:
                    mean_gradient = list(grads)
                else:
                    torch._foreach_add_(mean_gradient, grads)
        assert mean_gradient is not None  # large_batch_size >= 2 chunks
        count = len(chunks)
        sq_large = sum(float(norm) ** 2 for norm in torch._foreach_norm(mean_gradient)) / count**2
        return sq_small / count, sq_large
