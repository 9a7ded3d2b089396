"""Scheduler inside PyTorch Lightning, beside torch.optim.swa_utils, and with torch.compile."""

from __future__ import annotations

import math
import subprocess
import sys
import warnings

import pytest
import torch
from torch import nn
from torch.optim.swa_utils import SWALR, AveragedModel
from torch.utils.data import DataLoader, TensorDataset

import decaylab as dl
from decaylab.torch import Scheduler, VelocitySGD

SCHEDULE = dl.StepDecay(initial_lr=0.1, gamma=0.5, step_size=4)


def make_data(count=48):
    generator = torch.Generator().manual_seed(0)
    inputs = torch.randn(count, 4, generator=generator)
    return inputs, inputs.sum(dim=1, keepdim=True)


# -- Lightning ------------------------------------------------------------------

lightning = pytest.importorskip("lightning.pytorch")


class MemoryLogger(lightning.loggers.Logger):
    """A Lightning logger that keeps every logged metric in a list."""

    def __init__(self):
        super().__init__()
        self.rows = []

    @property
    def name(self):
        return "memory"

    @property
    def version(self):
        return 0

    def log_hyperparams(self, params, *args, **kwargs):
        pass

    def log_metrics(self, metrics, step=None):
        self.rows.append((step, dict(metrics)))


class TinyModule(lightning.LightningModule):
    def __init__(self):
        super().__init__()
        self.net = nn.Linear(4, 1)

    def training_step(self, batch, batch_index):
        inputs, targets = batch
        return nn.functional.mse_loss(self.net(inputs), targets)

    def configure_optimizers(self):
        optimizer = torch.optim.SGD(self.parameters(), lr=0.1, momentum=0.9)
        scheduler = Scheduler(optimizer, SCHEDULE)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}


class LrRecorder(lightning.Callback):
    """Record the LR in the optimizer right before each optimizer step."""

    def __init__(self):
        self.lrs = []

    def on_before_optimizer_step(self, trainer, module, optimizer):
        self.lrs.append(optimizer.param_groups[0]["lr"])


def fit(max_steps, accumulate=1):
    logger = MemoryLogger()
    recorder = LrRecorder()
    monitor = lightning.callbacks.LearningRateMonitor(logging_interval="step")
    trainer = lightning.Trainer(
        accelerator="cpu",
        devices=1,
        max_steps=max_steps,
        accumulate_grad_batches=accumulate,
        logger=logger,
        callbacks=[monitor, recorder],
        log_every_n_steps=1,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    inputs, targets = make_data()
    loader = DataLoader(TensorDataset(inputs, targets), batch_size=4)
    module = TinyModule()
    with warnings.catch_warnings():
        # Lightning suggests more DataLoader workers; irrelevant for 48 rows.
        warnings.filterwarnings("ignore", message=".*does not have many workers.*")
        trainer.fit(module, loader)
    return trainer, logger, recorder


def logged_lrs(logger):
    return [metrics["lr-SGD"] for _, metrics in logger.rows if "lr-SGD" in metrics]


@pytest.mark.slow
def test_lightning_logs_schedule_lrs():
    trainer, logger, recorder = fit(max_steps=20)
    expected = [SCHEDULE(t) for t in range(20)]
    assert recorder.lrs == expected
    assert logged_lrs(logger) == expected
    assert trainer.lr_scheduler_configs[0].scheduler.last_epoch == 20


@pytest.mark.slow
def test_lightning_accumulation_counts_updates():
    trainer, logger, recorder = fit(max_steps=10, accumulate=3)
    assert recorder.lrs == [SCHEDULE(t) for t in range(10)]
    assert trainer.lr_scheduler_configs[0].scheduler.last_epoch == 10


# -- swa_utils --------------------------------------------------------------------


def test_swalr_takes_over_after_scheduler():
    torch.manual_seed(0)
    model = nn.Linear(4, 1)
    optimizer = VelocitySGD(model.parameters(), lr=0.1, momentum=0.9)
    scheduler = Scheduler(optimizer, SCHEDULE)
    averaged = AveragedModel(model)
    inputs, targets = make_data(16)
    swa_start, swa_lr = 12, 0.01
    swa_scheduler = None
    used, snapshots = [], []

    for step in range(20):
        used.append(optimizer.param_groups[0]["lr"])
        loss = nn.functional.mse_loss(model(inputs), targets)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step < swa_start:
            scheduler.step()
            continue
        if swa_scheduler is None:
            swa_scheduler = SWALR(optimizer, swa_lr=swa_lr, anneal_epochs=3)
        averaged.update_parameters(model)
        snapshots.append(model.weight.detach().clone())
        swa_scheduler.step()

    assert used[:swa_start] == [SCHEDULE(t) for t in range(swa_start)]
    assert used[swa_start] == SCHEDULE(swa_start)
    assert math.isclose(used[-1], swa_lr, rel_tol=1e-12)
    assert averaged.n_averaged.item() == len(snapshots)
    torch.testing.assert_close(averaged.module.weight, torch.stack(snapshots).mean(dim=0))
    # The decaylab Scheduler still reports its own step and LRs.
    assert scheduler.last_epoch == swa_start
    assert scheduler.get_last_lr() == [SCHEDULE(swa_start)]


# -- torch.compile ----------------------------------------------------------------


def train(model, steps):
    optimizer = VelocitySGD(model.parameters(), lr=0.1, momentum=0.9)
    scheduler = Scheduler(optimizer, SCHEDULE)
    inputs, targets = make_data(16)
    used = []
    for _ in range(steps):
        used.append(optimizer.param_groups[0]["lr"])
        loss = nn.functional.mse_loss(model(inputs), targets)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        scheduler.step()
    return used


@pytest.mark.slow
def test_compiled_model_trains_like_eager():
    torch.set_num_threads(1)
    torch.manual_seed(0)
    eager = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 1))
    compiled_base = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 1))
    compiled_base.load_state_dict(eager.state_dict())
    compiled = torch.compile(compiled_base)

    eager_lrs = train(eager, 10)
    compiled_lrs = train(compiled, 10)

    assert compiled_lrs == eager_lrs == [SCHEDULE(t) for t in range(10)]
    for a, b in zip(eager.parameters(), compiled_base.parameters()):
        torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-6)


# -- missing extra ------------------------------------------------------------------


def test_missing_torch_names_extra():
    code = (
        "import sys\n"
        "sys.modules['torch'] = None\n"
        "try:\n"
        "    import decaylab.torch\n"
        "except ImportError as error:\n"
        "    print(error)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True)
    assert "pip install 'decaylab[torch]'" in result.stdout
