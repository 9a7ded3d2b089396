"""One training run: a model, an optimizer and a schedule, with monitors on.

The loop follows the monitor protocol of ``decaylab.torch``:
``loss.backward()``, ``before_step(t)``, ``optimizer.step()``,
``after_step(t, loss)``, then ``scheduler.step()``, where ``t`` is the
number of updates already done. Each update writes one row of
``steps.csv`` and each epoch one row of ``epochs.csv`` (row 0 is the
model before training). The sharpness probe measures every
``sharpness_every`` updates and after the last one, so the final
sharpness describes the trained model. Everything random (initial weights, batch order)
comes from the run's seed, so a seed and a torch thread count give the
same files every time.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import torch
from torch import nn

from decaylab.lab.config import CompareConfig
from decaylab.lab.data import Dataset
from decaylab.lab.models import build_model
from decaylab.lab.store import RUN_FILE, CsvLog, write_json_atomic
from decaylab.schedules import Schedule

__all__ = [
    "EPOCH_COLUMNS",
    "STEP_COLUMNS",
    "RunResult",
    "make_optimizer",
    "steps_per_epoch",
    "train_run",
]

logger = logging.getLogger(__name__)

STEP_COLUMNS = (
    "step", "epoch", "lr", "displacement", "grad_norm", "step_ratio", "train_loss",
    "sharpness", "ceiling",
)
EPOCH_COLUMNS = ("epoch", "step", "train_loss", "test_loss", "test_accuracy")
_EVAL_BATCH = 4096
# A first probe above this multiple of the ceiling means training starts far
# past the edge of stability. Example: the CNN on 2,000 Fashion-MNIST
# examples at the default lr 0.8 measures 12.8, and its step run ends one
# epoch at 15 % test accuracy with no NaN to mark it as diverged.
SHARP_START_RATIO = 2.0
SHARP_START_WARNING = (
    "run %s: the first sharpness probe is %.3g times the stability ceiling, so training "
    "starts far past the edge of stability and may not learn; lower --lr (or the "
    "initial LR of the --schedule specs)"
)


@dataclass(frozen=True)
class RunResult:
    """Outcome of one run, as written to its ``run.json``.

    ``diverged_at_step`` is the number of updates done when a loss or the
    model first became NaN or infinite. The final values of a diverged run
    are NaN. ``final_sharpness`` and ``final_ceiling`` come from the probe
    after the last update, and are NaN without the probe.
    ``initial_sharpness_ratio`` is sharpness / ceiling at the first probe
    (after update 0) and ``max_sharpness_ratio`` the largest over the run's
    probes.
    """

    run_id: str
    schedule: str
    seed: int
    status: str
    diverged_at_step: int | None
    steps: int
    wall_time_s: float
    final_test_accuracy: float
    final_test_loss: float
    final_train_loss: float
    final_sharpness: float
    final_ceiling: float
    initial_sharpness_ratio: float
    max_sharpness_ratio: float

    def to_json(self) -> dict[str, Any]:
        """Return the fields as a JSON-ready dict."""
        return asdict(self)


def steps_per_epoch(train_size: int, batch_size: int) -> int:
    """Return the updates per epoch; the last batch of an epoch may be smaller."""
    return -(-train_size // batch_size)


def make_optimizer(config: CompareConfig, model: nn.Module, lr: float) -> torch.optim.Optimizer:
    """Build ``config.optimizer`` over ``model``'s parameters with base LR ``lr``.

    ``config.momentum`` is the momentum of ``momentum`` and ``velocity``
    and ``beta1`` of ``adam`` and ``adamw`` (``beta2`` is torch's 0.999).
    """
    params = model.parameters()
    name, beta, decay = config.optimizer, config.momentum, config.weight_decay
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, weight_decay=decay)
    if name == "momentum":
        return torch.optim.SGD(params, lr=lr, momentum=beta, weight_decay=decay)
    if name == "velocity":
        from decaylab.torch.optim import VelocitySGD

        return VelocitySGD(
            params, lr=lr, momentum=beta, weight_decay=decay,
            momentum_correction=config.momentum_correction,
        )
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, betas=(beta, 0.999), weight_decay=decay)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, betas=(beta, 0.999), weight_decay=decay)
    raise ValueError(f"unknown optimizer {name!r}")


def train_run(
    config: CompareConfig,
    data: Dataset,
    schedule: Schedule,
    *,
    schedule_name: str,
    seed: int,
    run_dir: Path,
    progress: Callable[[int], object] | None = None,
) -> RunResult:
    """Train one run and write ``steps.csv``, ``epochs.csv`` and ``run.json`` into ``run_dir``.

    ``schedule`` counts optimizer updates. A NaN or infinite loss stops the
    run and records it as diverged, and the function returns normally.
    ``progress`` is called with 1 after every update.
    """
    from decaylab.torch.monitors import StepMonitor
    from decaylab.torch.scheduler import Scheduler
    from decaylab.torch.sharpness import SharpnessProbe

    started = time.perf_counter()
    torch.set_num_threads(config.threads)
    torch.manual_seed(seed)
    order_generator = torch.Generator().manual_seed(seed)

    x_train, y_train = torch.from_numpy(data.x_train), torch.from_numpy(data.y_train)
    x_test, y_test = torch.from_numpy(data.x_test), torch.from_numpy(data.y_test)
    model = build_model(
        config.model, data.input_shape, data.num_classes, hidden=config.hidden, is_image=data.is_image
    )
    loss_fn = nn.CrossEntropyLoss()
    optimizer = make_optimizer(config, model, schedule.initial_lr)
    scheduler = Scheduler(optimizer, schedule, unit="step", weight_decay=config.wd_policy)

    monitors: list[Any] = [StepMonitor(model, optimizer)]
    sharpness_probe = None
    if config.sharpness_every > 0:
        probe_batch = _probe_subset(x_train, y_train, config)
        sharpness_probe = SharpnessProbe(
            model, loss_fn, [probe_batch], optimizer, every=config.sharpness_every
        )
        monitors.append(sharpness_probe)
    board = _open_tensorboard(run_dir) if config.tensorboard else None

    run_id = f"{schedule_name}-seed{seed}"
    batch_size, epochs = config.batch_size, config.epochs
    last_step = steps_per_epoch(len(y_train), batch_size) * epochs - 1
    step = 0
    diverged_at: int | None = None
    probe = _ProbeTracker(run_id)
    with CsvLog(run_dir / "steps.csv", STEP_COLUMNS) as steps_log, \
            CsvLog(run_dir / "epochs.csv", EPOCH_COLUMNS) as epochs_log:
        last_epoch_row = _evaluate_epoch(model, loss_fn, 0, 0, (x_train, y_train), (x_test, y_test))
        epochs_log.write(last_epoch_row)

        for epoch in range(epochs):
            model.train()
            for indices in _batches(len(y_train), batch_size, order_generator):
                optimizer.zero_grad(set_to_none=True)
                loss = loss_fn(model(x_train[indices]), y_train[indices])
                loss_value = loss.item()
                row: dict[str, Any] = {"step": step, "epoch": epoch, "train_loss": loss_value}
                # NOTE: only NaN or infinite values count as divergence. A loss
                # that grows huge but stays finite (tanh saturates) ends "finished".
                if not math.isfinite(loss_value):
                    row["lr"] = optimizer.param_groups[0]["lr"]
                    steps_log.write(row)
                    diverged_at = step
                    break

                loss.backward()
                for monitor in monitors:
                    monitor.before_step(step)
                optimizer.step()
                for monitor in monitors:
                    row.update(monitor.after_step(step, loss_value))
                # Measured before scheduler.step(), so the ceiling uses the
                # LR of the last update, as on every other probe step.
                if step == last_step and sharpness_probe is not None and "sharpness" not in row:
                    row.update(sharpness_probe.measure(loss_value))
                scheduler.step()
                step += 1

                steps_log.write(row)
                if board is not None:
                    _log_tensorboard(board, row)
                if progress is not None:
                    progress(1)
                if probe.record(row):
                    diverged_at = step
                    break
            if diverged_at is not None:
                break

            last_epoch_row = _evaluate_epoch(
                model, loss_fn, epoch + 1, step, (x_train, y_train), (x_test, y_test)
            )
            epochs_log.write(last_epoch_row)
            if not math.isfinite(last_epoch_row["train_loss"]):
                diverged_at = step
                break

    if board is not None:
        board.close()
    if diverged_at is not None:
        logger.warning("run %s diverged at step %d", run_id, diverged_at)

    nan = math.nan
    result = RunResult(
        run_id=run_id,
        schedule=schedule_name,
        seed=seed,
        status="finished" if diverged_at is None else "diverged",
        diverged_at_step=diverged_at,
        steps=step,
        wall_time_s=time.perf_counter() - started,
        final_test_accuracy=last_epoch_row["test_accuracy"] if diverged_at is None else nan,
        final_test_loss=last_epoch_row["test_loss"] if diverged_at is None else nan,
        final_train_loss=last_epoch_row["train_loss"] if diverged_at is None else nan,
        final_sharpness=probe.sharpness if diverged_at is None else nan,
        final_ceiling=probe.ceiling if diverged_at is None else nan,
        initial_sharpness_ratio=probe.initial_ratio,
        max_sharpness_ratio=probe.max_ratio,
    )
    write_json_atomic(run_dir / RUN_FILE, {**result.to_json(), "spec": schedule.to_spec()})
    return result


class _ProbeTracker:
    """Last sharpness and ceiling seen, and the first and largest sharpness / ceiling.

    The first probe logs :data:`SHARP_START_WARNING` when its ratio exceeds
    :data:`SHARP_START_RATIO`, so a run warns at most once.
    """

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id
        self.sharpness = math.nan
        self.ceiling = math.nan
        self.initial_ratio = math.nan
        self.max_ratio = math.nan
        self.probes = 0

    def record(self, row: dict[str, Any]) -> bool:
        """Take the probe values of ``row``; return True when the probe saw divergence."""
        if row.get("sharpness_diverged", 0.0) == 1.0:
            return True
        if "sharpness" not in row:
            return False
        self.sharpness, self.ceiling = row["sharpness"], row["ceiling"]
        ratio = self.sharpness / self.ceiling
        self.probes += 1
        if self.probes == 1:
            self.initial_ratio = ratio
            if ratio > SHARP_START_RATIO:
                logger.warning(SHARP_START_WARNING, self.run_id, ratio)
        if math.isnan(self.max_ratio) or ratio > self.max_ratio:
            self.max_ratio = ratio
        return False


def _batches(count: int, batch_size: int, generator: torch.Generator) -> Iterator[torch.Tensor]:
    order = torch.randperm(count, generator=generator)
    for start in range(0, count, batch_size):
        yield order[start : start + batch_size]


def _probe_subset(
    x_train: torch.Tensor, y_train: torch.Tensor, config: CompareConfig
) -> tuple[torch.Tensor, torch.Tensor]:
    # Every run of a comparison probes the same subset, because it depends
    # on the split seed only and not on the run's seed.
    generator = torch.Generator().manual_seed(config.split_seed)
    size = min(config.sharpness_examples, len(y_train))
    chosen = torch.randperm(len(y_train), generator=generator)[:size]
    return x_train[chosen], y_train[chosen]


@torch.no_grad()
def _evaluate(
    model: nn.Module, loss_fn: nn.Module, features: torch.Tensor, labels: torch.Tensor
) -> tuple[float, float]:
    model.eval()
    total_loss, correct = 0.0, 0
    for start in range(0, len(labels), _EVAL_BATCH):
        logits = model(features[start : start + _EVAL_BATCH])
        batch_labels = labels[start : start + _EVAL_BATCH]
        total_loss += loss_fn(logits, batch_labels).item() * len(batch_labels)
        correct += int((logits.argmax(dim=1) == batch_labels).sum())
    model.train()
    return total_loss / len(labels), correct / len(labels)


def _evaluate_epoch(
    model: nn.Module,
    loss_fn: nn.Module,
    epoch: int,
    step: int,
    train: tuple[torch.Tensor, torch.Tensor],
    test: tuple[torch.Tensor, torch.Tensor],
) -> dict[str, float]:
    train_loss, _ = _evaluate(model, loss_fn, *train)
    test_loss, test_accuracy = _evaluate(model, loss_fn, *test)
    return {
        "epoch": epoch, "step": step, "train_loss": train_loss,
        "test_loss": test_loss, "test_accuracy": test_accuracy,
    }


def _open_tensorboard(run_dir: Path) -> Any:
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError as error:
        raise ImportError(
            "--tensorboard needs the tensorboard package: pip install 'decaylab[tensorboard]'"
        ) from error
    return SummaryWriter(log_dir=str(run_dir / "tensorboard"))


def _log_tensorboard(board: Any, row: dict[str, Any]) -> None:
    step = row["step"]
    for key, value in row.items():
        if key not in ("step", "epoch") and isinstance(value, float):
            board.add_scalar(key, value, step)
