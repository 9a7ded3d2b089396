"""The lab's default model and data, set up the way ``decaylab compare`` trains them.

The data are digits through ``load_dataset("digits")`` (the lab's split
and standardisation), and the model is the 64-32-10 tanh MLP from
``build_model`` (2,410 parameters), trained by plain SGD at LR 0.8 on
shuffled batches of 512. The probe subset has the 1,000 training examples
that the lab draws with a generator seeded by the split seed (0).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Iterator

import torch
from torch import nn

from decaylab.lab.config import CompareConfig
from decaylab.lab.data import load_dataset
from decaylab.lab.models import build_model

DEFAULTS = CompareConfig()


@dataclass
class LabSetup:
    """Training tensors, the probe batch and a seeded, untrained default model."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    probe: tuple[torch.Tensor, torch.Tensor]
    model: nn.Sequential
    loss_fn: nn.Module


def lab_setup(seed: int = 0) -> LabSetup:
    """Load digits and build the default model with ``torch.manual_seed(seed)``."""
    data = load_dataset(DEFAULTS.dataset, split_seed=DEFAULTS.split_seed)
    x_train, y_train = torch.from_numpy(data.x_train), torch.from_numpy(data.y_train)
    generator = torch.Generator().manual_seed(DEFAULTS.split_seed)
    chosen = torch.randperm(len(y_train), generator=generator)[: DEFAULTS.sharpness_examples]
    torch.manual_seed(seed)
    model = build_model(DEFAULTS.model, data.input_shape, data.num_classes,
                        hidden=DEFAULTS.hidden, is_image=data.is_image)
    return LabSetup(x_train, y_train, (x_train[chosen], y_train[chosen]), model, nn.CrossEntropyLoss())


def batch_indices(count: int, generator: torch.Generator) -> Iterator[torch.Tensor]:
    """Yield one epoch of shuffled batch indices of the default batch size."""
    order = torch.randperm(count, generator=generator)
    for start in range(0, count, DEFAULTS.batch_size):
        yield order[start : start + DEFAULTS.batch_size]


def trained_model(updates: int, earlier: int, seed: int = 0) -> tuple[LabSetup, nn.Sequential]:
    """Train the default model for ``updates`` SGD updates at the default LR.

    Returns the setup (its model trained) and a copy of the model as it was
    ``earlier`` updates before the end. All ``updates`` stay inside the
    default step schedule's first plateau (100 updates), where its LR is
    the constant 0.8.
    """
    setup = lab_setup(seed)
    optimizer = torch.optim.SGD(setup.model.parameters(), lr=DEFAULTS.lr)
    generator = torch.Generator().manual_seed(seed)
    snapshot = copy.deepcopy(setup.model)
    done = 0
    while done < updates:
        for indices in batch_indices(len(setup.y_train), generator):
            optimizer.zero_grad(set_to_none=True)
            setup.loss_fn(setup.model(setup.x_train[indices]), setup.y_train[indices]).backward()
            optimizer.step()
            done += 1
            if done == updates - earlier:
                snapshot = copy.deepcopy(setup.model)
            if done == updates:
                break
    return setup, snapshot
