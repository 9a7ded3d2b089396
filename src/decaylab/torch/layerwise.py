"""Layer-wise LR decay for fine-tuning: lower blocks get geometrically smaller LRs.

Blocks are numbered by depth ``l = 0 .. L`` from the input side, and the
group of block ``l`` gets ``lr = top_lr * alpha ** (L - l)``, so the block
nearest the output trains at ``top_lr`` and each block below it at
``alpha`` times the LR of the block above. The returned param groups go
straight into a torch optimizer. A :class:`decaylab.torch.Scheduler` with
one schedule then scales every group by ``schedule(t) /
schedule.initial_lr``, which keeps these ratios at every step.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Literal, Union

import torch
from torch import nn

from decaylab._validation import check_all, real

__all__ = ["layerwise_param_groups"]

Blocks = Union[Sequence[str], Callable[[str], Union[int, None]]]
Unmatched = Literal["top", "error"]

UNMATCHED_GROUP_NAME = "unmatched"


def layerwise_param_groups(
    model: nn.Module,
    blocks: Blocks,
    top_lr: float,
    alpha: float,
    *,
    unmatched: Unmatched = "top",
    weight_decay: float | None = None,
) -> list[dict[str, Any]]:
    """Build optimizer param groups with ``lr = top_lr * alpha ** (L - depth)``.

    ``blocks`` is either the ordered list of block prefixes, from the input
    side to the output side (a parameter belongs to prefix ``p`` when its
    name is ``p`` or starts with ``p + "."``; ``""`` matches nothing), or a
    function from a parameter name to its depth (an integer >= 0, or
    ``None`` for no block). With a list, ``L = len(blocks) - 1``; with a
    function, ``L`` is the largest depth it returns.

    Parameters that no block claims go to one group named ``"unmatched"``
    at ``top_lr`` (``unmatched="top"``, the usual place of a new task
    head), or raise ``ValueError`` (``unmatched="error"``). Only
    parameters with ``requires_grad`` are placed; a block whose parameters
    are all frozen gets no group. Each group carries ``name`` (the prefix,
    or ``"depth <l>"`` for a function), ``depth`` and, when given,
    ``weight_decay``.

    Raises ``ValueError`` for ``alpha`` outside (0, 1], a prefix that names
    no parameter, a repeated prefix, or a parameter claimed by two blocks.

    >>> from torch import nn
    >>> model = nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 2), nn.Linear(2, 1))
    >>> groups = layerwise_param_groups(model, ["0", "1"], top_lr=0.1, alpha=0.5)
    >>> [(g["name"], g["lr"], len(g["params"])) for g in groups]
    [('0', 0.05, 2), ('1', 0.1, 2), ('unmatched', 0.1, 2)]
    """
    if not isinstance(model, nn.Module):
        raise TypeError(
            f"layerwise_param_groups: model must be a torch.nn.Module; got {type(model).__name__}"
        )
    rules = {"top_lr": real(0.0, low_open=True), "alpha": real(0.0, 1.0, low_open=True)}
    values = check_all("layerwise_param_groups", rules, (), {"top_lr": top_lr, "alpha": alpha})
    if unmatched not in ("top", "error"):
        raise ValueError(
            f"layerwise_param_groups: unmatched must be 'top' or 'error'; got {unmatched!r}"
        )
    if weight_decay is not None:
        weight_decay = real(0.0).check("layerwise_param_groups", "weight_decay", weight_decay)

    named = [(name, p) for name, p in model.named_parameters() if p.requires_grad]
    if callable(blocks):
        depths, labels = _depths_from_function(blocks, named)
        top_depth = max(depths.values(), default=0)
    else:
        depths, labels = _depths_from_prefixes(blocks, model)
        top_depth = len(labels) - 1

    members: dict[int, list[torch.Tensor]] = {}
    leftover: list[str] = []
    for name, param in named:
        depth = depths.get(name)
        if depth is None:
            leftover.append(name)
        else:
            members.setdefault(depth, []).append(param)

    groups = []
    for depth in sorted(members):
        lr = values["top_lr"] * values["alpha"] ** (top_depth - depth)
        groups.append(_group(labels[depth], depth, members[depth], lr, weight_decay))
    if leftover:
        if unmatched == "error":
            raise ValueError(
                f"layerwise_param_groups: {len(leftover)} parameters belong to no block, "
                f"first {leftover[:3]}; add their prefixes to blocks or pass unmatched='top'"
            )
        params = [dict(named)[name] for name in leftover]
        groups.append(_group(UNMATCHED_GROUP_NAME, top_depth, params, values["top_lr"],
                             weight_decay))
    return groups


def _group(name: str, depth: int, params: Sequence[torch.Tensor], lr: float,
           weight_decay: float | None) -> dict[str, Any]:
    group: dict[str, Any] = {"params": list(params), "lr": lr, "name": name, "depth": depth}
    if weight_decay is not None:
        group["weight_decay"] = weight_decay
    return group


def _depths_from_prefixes(
    prefixes: Sequence[str], model: nn.Module
) -> tuple[dict[str, int], dict[int, str]]:
    """Map each parameter name (trainable or not) to the depth of the one prefix that claims it."""
    if isinstance(prefixes, str) or not all(isinstance(p, str) for p in prefixes):
        raise TypeError(
            "layerwise_param_groups: blocks must be a list of name prefixes or a function "
            f"from parameter name to depth; got {prefixes!r}"
        )
    if not prefixes:
        raise ValueError("layerwise_param_groups: blocks is empty; give at least one prefix")
    repeated = sorted({p for p in prefixes if list(prefixes).count(p) > 1})
    if repeated:
        raise ValueError(f"layerwise_param_groups: blocks lists {repeated} more than once")

    all_names = [name for name, _ in model.named_parameters()]
    depths: dict[str, int] = {}
    owners: dict[str, str] = {}
    for depth, prefix in enumerate(prefixes):
        claimed = [n for n in all_names if prefix and (n == prefix or n.startswith(prefix + "."))]
        if not claimed:
            raise ValueError(
                f"layerwise_param_groups: block {prefix!r} matches no parameter of the model; "
                f"parameter names start with {sorted({n.split('.')[0] for n in all_names})}"
            )
        for name in claimed:
            if name in owners:
                raise ValueError(
                    f"layerwise_param_groups: parameter {name!r} is claimed by blocks "
                    f"{owners[name]!r} and {prefix!r}; make the prefixes disjoint"
                )
            owners[name] = prefix
            depths[name] = depth
    labels = dict(enumerate(prefixes))
    return depths, labels


def _depths_from_function(
    depth_of: Callable[[str], int | None], named: Sequence[tuple[str, torch.Tensor]]
) -> tuple[dict[str, int], dict[int, str]]:
    depths: dict[str, int] = {}
    for name, _ in named:
        depth = depth_of(name)
        if depth is None:
            continue
        if isinstance(depth, bool) or not isinstance(depth, int) or depth < 0:
            raise ValueError(
                f"layerwise_param_groups: blocks({name!r}) returned {depth!r}; the depth "
                "function must return an integer >= 0 or None"
            )
        depths[name] = depth
    labels = {depth: f"depth {depth}" for depth in set(depths.values())}
    return depths, labels
