"""Small models for the lab: a tanh MLP and a two-layer CNN.

Both are plain ``torch.nn.Sequential`` stacks, so the parameter order is
fixed and a seeded ``torch.manual_seed`` gives the same initial weights.
"""

from __future__ import annotations

from typing import Sequence

from torch import nn

from decaylab.lab.config import MODELS

__all__ = ["MODELS", "build_model", "count_parameters"]


def build_model(
    name: str,
    input_shape: Sequence[int],
    num_classes: int,
    *,
    hidden: Sequence[int] = (32,),
    is_image: bool = False,
) -> nn.Sequential:
    """Build model ``name`` for inputs of ``input_shape`` (one example).

    ``mlp`` flattens the input and applies ``Linear -> tanh`` for each size
    in ``hidden``, then a linear layer to ``num_classes`` logits. ``cnn``
    needs image input ``(channels, height, width)`` with height and width
    >= 4: two 3x3 convolutions with 16 and 32 channels, each followed by
    ReLU and 2x2 max pooling, then a linear layer.

    >>> model = build_model("mlp", (64,), 10, hidden=[32])
    >>> count_parameters(model)
    2410
    """
    if num_classes < 2:
        raise ValueError(f"num_classes must be >= 2; got {num_classes}")
    if name == "mlp":
        return _build_mlp(input_shape, num_classes, hidden)
    if name == "cnn":
        return _build_cnn(input_shape, num_classes, is_image)
    raise ValueError(f"unknown model {name!r}; use one of {', '.join(MODELS)}")


def count_parameters(model: nn.Module) -> int:
    """Return the number of trainable scalars in ``model``."""
    return sum(parameter.numel() for parameter in model.parameters() if parameter.requires_grad)


def _build_mlp(input_shape: Sequence[int], num_classes: int, hidden: Sequence[int]) -> nn.Sequential:
    if not hidden or any(size < 1 for size in hidden):
        raise ValueError(f"hidden must list one or more layer sizes >= 1; got {list(hidden)}")
    width = 1
    for size in input_shape:
        width *= int(size)

    layers: list[nn.Module] = [nn.Flatten()]
    for size in hidden:
        layers += [nn.Linear(width, size), nn.Tanh()]
        width = size
    layers.append(nn.Linear(width, num_classes))
    return nn.Sequential(*layers)


def _build_cnn(input_shape: Sequence[int], num_classes: int, is_image: bool) -> nn.Sequential:
    if not is_image or len(input_shape) != 3:
        raise ValueError(
            f"model 'cnn' needs image data of shape (channels, height, width); this data set "
            f"has examples of shape {tuple(input_shape)}; use --model mlp"
        )
    channels, height, width = (int(size) for size in input_shape)
    if height < 4 or width < 4:
        raise ValueError(
            f"model 'cnn' needs images of at least 4x4 pixels; got {height}x{width}; "
            "use --model mlp"
        )
    # Two 2x2 poolings with floor division: 28 -> 14 -> 7, 8 -> 4 -> 2.
    flat = 32 * (height // 4) * (width // 4)
    return nn.Sequential(
        nn.Conv2d(channels, 16, kernel_size=3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(16, 32, kernel_size=3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(flat, num_classes),
    )
