"""layerwise_param_groups: depth-wise LRs, the unmatched group, validation, Scheduler scaling."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import decaylab as dl
from decaylab.torch import Scheduler, layerwise_param_groups


class Encoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(10, 4)
        self.layers = nn.ModuleList(nn.Linear(4, 4) for _ in range(3))
        self.head = nn.Linear(4, 2)


BLOCKS = ["embed", "layers.0", "layers.1", "layers.2"]


def names_of(model, group):
    lookup = {id(p): name for name, p in model.named_parameters()}
    return sorted(lookup[id(p)] for p in group["params"])


def test_prefix_blocks_get_geometric_lrs():
    model = Encoder()
    groups = layerwise_param_groups(model, BLOCKS, top_lr=0.1, alpha=0.5)
    assert [g["name"] for g in groups] == [*BLOCKS, "unmatched"]
    assert [g["lr"] for g in groups] == [0.1 * 0.5**3, 0.1 * 0.5**2, 0.1 * 0.5, 0.1, 0.1]
    assert [g["depth"] for g in groups] == [0, 1, 2, 3, 3]
    assert names_of(model, groups[1]) == ["layers.0.bias", "layers.0.weight"]
    assert names_of(model, groups[-1]) == ["head.bias", "head.weight"]


def test_every_trainable_parameter_placed_once():
    model = Encoder()
    groups = layerwise_param_groups(model, BLOCKS, top_lr=0.1, alpha=0.8)
    placed = [id(p) for g in groups for p in g["params"]]
    assert sorted(placed) == sorted(id(p) for p in model.parameters())


def test_depth_function():
    model = Encoder()

    def depth_of(name):
        if name.startswith("embed"):
            return 0
        if name.startswith("layers."):
            return 1 + int(name.split(".")[1])
        return None

    groups = layerwise_param_groups(model, depth_of, top_lr=0.2, alpha=0.9, weight_decay=0.01)
    assert [g["name"] for g in groups] == ["depth 0", "depth 1", "depth 2", "depth 3", "unmatched"]
    assert groups[0]["lr"] == 0.2 * 0.9**3
    assert all(g["weight_decay"] == 0.01 for g in groups)


def test_alpha_one_gives_equal_lrs():
    groups = layerwise_param_groups(Encoder(), BLOCKS, top_lr=0.1, alpha=1.0)
    assert {g["lr"] for g in groups} == {0.1}


def test_frozen_parameters_left_out():
    model = Encoder()
    model.embed.weight.requires_grad_(False)
    groups = layerwise_param_groups(model, BLOCKS, top_lr=0.1, alpha=0.5)
    assert [g["name"] for g in groups] == ["layers.0", "layers.1", "layers.2", "unmatched"]
    # Depths still count the frozen block, so the LRs stay where they were.
    assert groups[0]["lr"] == 0.1 * 0.5**2


def test_unmatched_error_lists_parameters():
    with pytest.raises(ValueError, match=r"2 parameters belong to no block, first \['head.weight'"):
        layerwise_param_groups(Encoder(), BLOCKS, top_lr=0.1, alpha=0.5, unmatched="error")


def test_scheduler_keeps_layer_ratios():
    model = Encoder()
    groups = layerwise_param_groups(model, BLOCKS, top_lr=0.1, alpha=0.5)
    optimizer = torch.optim.AdamW(groups)
    schedule = dl.StepDecay(initial_lr=0.1, gamma=0.1, step_size=2)
    scheduler = Scheduler(optimizer, schedule)
    for t in range(5):
        lrs = [g["lr"] for g in optimizer.param_groups]
        assert lrs[-1] == schedule(t)
        for depth, lr in enumerate(lrs[:4]):
            assert lr == pytest.approx(schedule(t) * 0.5 ** (3 - depth), rel=1e-15)
        optimizer.step()
        scheduler.step()


@pytest.mark.parametrize(
    "kwargs, error, pattern",
    [
        ({"alpha": 0.0}, ValueError, r"alpha must be a number in \(0, 1\]; got 0.0"),
        ({"alpha": 1.5}, ValueError, "alpha must be"),
        ({"top_lr": 0.0}, ValueError, "top_lr must be"),
        ({"blocks": ["embed", "layers.7"]}, ValueError, "block 'layers.7' matches no parameter"),
        ({"blocks": ["embed", "embed"]}, ValueError, r"lists \['embed'\] more than once"),
        ({"blocks": ["layers", "layers.1"]}, ValueError,
         "'layers.1.weight' is claimed by blocks 'layers' and 'layers.1'"),
        ({"blocks": []}, ValueError, "blocks is empty"),
        ({"blocks": "embed"}, TypeError, "blocks must be a list of name prefixes"),
        ({"blocks": lambda name: -1}, ValueError, "must return an integer >= 0 or None"),
        ({"unmatched": "drop"}, ValueError, "unmatched must be 'top' or 'error'"),
        ({"weight_decay": -0.1}, ValueError, "weight_decay must be"),
    ],
)
def test_rejects_bad_arguments(kwargs, error, pattern):
    arguments = {"blocks": BLOCKS, "top_lr": 0.1, "alpha": 0.5, **kwargs}
    with pytest.raises(error, match=pattern):
        layerwise_param_groups(Encoder(), **arguments)


def test_rejects_non_module():
    with pytest.raises(TypeError, match="model must be a torch.nn.Module; got list"):
        layerwise_param_groups([], BLOCKS, top_lr=0.1, alpha=0.5)
