"""Options of decaylab.lab.config: conversion, validation and TOML round trips."""

from __future__ import annotations

from pathlib import Path

import pytest

from decaylab.lab.config import (
    CompareConfig,
    ConfigError,
    config_differences,
    config_from_mapping,
    config_to_toml,
    read_config_file,
)


def test_defaults_are_valid() -> None:
    config = config_from_mapping({})
    assert config == CompareConfig()
    assert config.match == ("half-life", "final-lr", "area")


def test_strings_and_dashes_convert() -> None:
    config = config_from_mapping({
        "batch-size": "64", "lr": "0.25", "hidden": "64, 32", "match": "area",
        "momentum-correction": "off", "optimizer": "velocity", "tensorboard": "on",
    })
    assert config.batch_size == 64
    assert config.lr == 0.25
    assert config.hidden == (64, 32)
    assert config.match == ("area",)
    assert config.momentum_correction is False
    assert config.tensorboard is True


def test_match_default_depends_on_schedules() -> None:
    user = config_from_mapping({"schedule": ["step(initial_lr=0.1, gamma=0.5, step_size=3)"]})
    assert user.match == ()
    explicit = config_from_mapping({"schedule": "exponential(initial_lr=0.1, rate=0.1)",
                                    "match": "none"})
    assert explicit.schedule == ("exponential(initial_lr=0.1, rate=0.1)",)
    assert explicit.match == ()


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("epochs", 0, "epochs must be an integer >= 1; got 0"),
        ("epochs", "ten", "epochs must be an integer >= 1; got 'ten'"),
        ("epochs", True, "epochs must be an integer"),
        ("seeds", -1, "seeds must be an integer >= 1; got -1"),
        ("batch_size", 0, "batch_size must be an integer >= 1; got 0"),
        ("lr", 0.0, r"lr must be a number in \(0, inf\); got 0.0"),
        ("lr", "nan", "lr must be a number"),
        ("momentum", 1.0, r"momentum must be a number in \[0, 1\)"),
        ("test_fraction", 1.5, "test_fraction must be a number in"),
        ("dataset", "cifar10", "unknown dataset 'cifar10'; use one of digits"),
        ("model", "resnet", "unknown model 'resnet'; use one of mlp, cnn"),
        ("optimizer", "lion", "unknown optimizer 'lion'; use one of sgd"),
        ("match", "half-life,bogus", "unknown match 'bogus'"),
        ("match", "area,area", "lists a method twice"),
        ("hidden", "32,0", "hidden must be an integer >= 1; got 0"),
        ("tensorboard", "maybe", "tensorboard must be on or off"),
        ("wd_policy", "sometimes", "unknown wd_policy 'sometimes'"),
        ("colour", "red", "unknown option 'colour'"),
    ],
)
def test_invalid_values_rejected(key: str, value: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        config_from_mapping({key: value})


def test_cross_key_rules() -> None:
    with pytest.raises(ConfigError, match="schedule_unit 'epoch' applies to --schedule"):
        config_from_mapping({"schedule_unit": "epoch"})
    with pytest.raises(ConfigError, match="velocity optimizer only; got optimizer 'sgd'"):
        config_from_mapping({"momentum_correction": "off"})
    with pytest.raises(ConfigError, match="given twice"):
        config_from_mapping({"batch-size": 2, "batch_size": 2})


def test_toml_round_trip(tmp_path: Path) -> None:
    config = config_from_mapping({"hidden": "16,8", "schedule": ["step(initial_lr=0.1, "
                                  "gamma=0.5, step_size=3)"], "match": "half-life"})
    path = tmp_path / "config.toml"
    path.write_text(config_to_toml(config))
    assert config_from_mapping(read_config_file(path)) == config


def test_config_file_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        read_config_file(tmp_path / "absent.toml")
    broken = tmp_path / "broken.toml"
    broken.write_text("epochs = = 3\n")
    with pytest.raises(ConfigError, match="cannot read config file"):
        read_config_file(broken)
    nested = tmp_path / "nested.toml"
    nested.write_text("[training]\nepochs = 3\n")
    with pytest.raises(ConfigError, match="'training' is a table"):
        read_config_file(nested)


def test_differences_ignore_output_options() -> None:
    stored = {"epochs": 3, "out": "a", "report": True, "tensorboard": False}
    current = config_from_mapping({"epochs": 3, "out": "b", "report": False, "tensorboard": True})
    assert config_differences(stored, current) == []
    changed = config_from_mapping({"epochs": 4, "lr": 0.1})
    assert config_differences(stored, changed) == ["lr", "epochs"]
