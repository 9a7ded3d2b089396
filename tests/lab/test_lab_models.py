"""Models of decaylab.lab.models: shapes, parameter counts and bad input."""

from __future__ import annotations

import pytest
import torch

from decaylab.lab.models import build_model, count_parameters


def test_default_mlp_on_digits_has_2410_parameters() -> None:
    model = build_model("mlp", (1, 8, 8), 10, hidden=(32,), is_image=True)
    assert count_parameters(model) == 64 * 32 + 32 + 32 * 10 + 10
    assert model(torch.zeros(5, 1, 8, 8)).shape == (5, 10)
    assert any(isinstance(layer, torch.nn.Tanh) for layer in model)


def test_mlp_with_several_hidden_layers() -> None:
    model = build_model("mlp", (40,), 10, hidden=(64, 32))
    assert count_parameters(model) == 40 * 64 + 64 + 64 * 32 + 32 + 32 * 10 + 10
    assert model(torch.zeros(3, 40)).shape == (3, 10)


def test_cnn_on_28x28_images() -> None:
    model = build_model("cnn", (1, 28, 28), 10, is_image=True)
    conv_channels = [layer.out_channels for layer in model if isinstance(layer, torch.nn.Conv2d)]
    assert conv_channels == [16, 32]
    assert model(torch.zeros(2, 1, 28, 28)).shape == (2, 10)


def test_cnn_rejects_flat_data() -> None:
    with pytest.raises(ValueError, match=r"model 'cnn' needs image data .* \(40,\); use --model mlp"):
        build_model("cnn", (40,), 10, is_image=False)


def test_cnn_rejects_tiny_images() -> None:
    with pytest.raises(ValueError, match="at least 4x4 pixels; got 3x3"):
        build_model("cnn", (1, 3, 3), 10, is_image=True)


def test_unknown_model_and_bad_sizes() -> None:
    with pytest.raises(ValueError, match="unknown model 'resnet'; use one of mlp, cnn"):
        build_model("resnet", (4,), 2)
    with pytest.raises(ValueError, match="hidden must list one or more layer sizes"):
        build_model("mlp", (4,), 2, hidden=())
    with pytest.raises(ValueError, match="num_classes must be >= 2"):
        build_model("mlp", (4,), 1)


def test_seed_fixes_initial_weights() -> None:
    torch.manual_seed(3)
    first = build_model("mlp", (4,), 2)
    torch.manual_seed(3)
    second = build_model("mlp", (4,), 2)
    for a, b in zip(first.parameters(), second.parameters()):
        assert torch.equal(a, b)
