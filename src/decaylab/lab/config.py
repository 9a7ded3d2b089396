"""Options of ``decaylab compare``: declarations, TOML files and validation.

Each option is declared once in :data:`OPTIONS` with its kind, default,
allowed values and help text. The command line, ``--config`` files and the
``config.toml`` of a run folder all use these keys (dashes or underscores),
and every value, a command-line string or a TOML value, goes through the
same conversion in :func:`config_from_mapping`.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Callable, Mapping

from decaylab.lab.data import BUILTIN_DATASETS

__all__ = [
    "MODELS",
    "OPTIONS",
    "OPTIMIZERS",
    "MATCH_METHODS",
    "NON_RESULT_KEYS",
    "CompareConfig",
    "ConfigError",
    "OptionSpec",
    "config_differences",
    "config_from_mapping",
    "config_to_toml",
    "read_config_file",
]

MODELS = ("mlp", "cnn")
OPTIMIZERS = ("sgd", "momentum", "velocity", "adam", "adamw")
MATCH_METHODS = ("half-life", "final-lr", "area")
# Keys that change no number a run produces, so resume ignores them.
NON_RESULT_KEYS = frozenset({"out", "tensorboard", "report"})


class ConfigError(ValueError):
    """An invalid option value or configuration file. The message names the key."""


@dataclass(frozen=True)
class CompareConfig:
    """The resolved options of one comparison (see :data:`OPTIONS` for meanings).

    The defaults train the 64-32-10 tanh MLP on digits with plain SGD at
    LR 0.8 on batches of 512 (3 updates per epoch, 300 in all), where
    sharpness rises to about the ceiling 2/lr in the first plateau.
    """

    dataset: str = "digits"
    data_dir: str = ""
    test_fraction: float = 0.2
    split_seed: int = 0
    label_column: str = "-1"
    train_examples: int = 0
    model: str = "mlp"
    hidden: tuple[int, ...] = (32,)
    optimizer: str = "sgd"
    lr: float = 0.8
    momentum: float = 0.9
    momentum_correction: bool = True
    weight_decay: float = 0.0
    wd_policy: str = "follow"
    schedule: tuple[str, ...] = ()
    schedule_unit: str = "step"
    gamma: float = 0.2
    drops: int = 2
    match: tuple[str, ...] = MATCH_METHODS
    warmup: int = 0
    epochs: int = 100
    seeds: int = 5
    batch_size: int = 512
    sharpness_every: int = 10
    sharpness_examples: int = 1000
    # One thread: with two, the default 2,410-parameter model trained 2-3x slower
    # on a busy 2-core machine (decaylab compare --epochs 30 --seeds 1).
    threads: int = 1
    tensorboard: bool = False
    report: bool = True
    out: str = ""


@dataclass(frozen=True)
class OptionSpec:
    """One option: its key, how a raw value converts, and its help text."""

    key: str
    convert: Callable[[str, Any], Any]
    help: str
    metavar: str = "VALUE"

    @property
    def flag(self) -> str:
        """The command-line spelling, e.g. ``--batch-size``."""
        return "--" + self.key.replace("_", "-")


def _integer(minimum: int) -> Callable[[str, Any], int]:
    def convert(key: str, value: Any) -> int:
        if isinstance(value, str):
            try:
                value = int(value.strip())
            except ValueError:
                raise ConfigError(f"{key} must be an integer >= {minimum}; got {value!r}") from None
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key} must be an integer >= {minimum}; got {value!r}")
        if value < minimum:
            raise ConfigError(f"{key} must be an integer >= {minimum}; got {value}")
        return value

    return convert


def _real(low: float, high: float, *, low_open: bool, high_open: bool) -> Callable[[str, Any], float]:
    interval = f"{'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"

    def convert(key: str, value: Any) -> float:
        if isinstance(value, str):
            try:
                value = float(value.strip())
            except ValueError:
                raise ConfigError(f"{key} must be a number in {interval}; got {value!r}") from None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{key} must be a number in {interval}; got {value!r}")
        value = float(value)
        below = value <= low if low_open else value < low
        above = value >= high if high_open else value > high
        if math.isnan(value) or below or above:
            raise ConfigError(f"{key} must be a number in {interval}; got {value!r}")
        return value

    return convert


def _choice(choices: tuple[str, ...]) -> Callable[[str, Any], str]:
    def convert(key: str, value: Any) -> str:
        if value not in choices:
            raise ConfigError(f"unknown {key} {value!r}; use one of {', '.join(choices)}")
        return str(value)

    return convert


def _text(key: str, value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise ConfigError(f"{key} must be a string; got {value!r}")
    return str(value)


def _dataset(key: str, value: Any) -> str:
    text = _text(key, value)
    if text not in BUILTIN_DATASETS and not text.lower().endswith((".npz", ".csv")):
        raise ConfigError(
            f"unknown {key} {text!r}; use one of {', '.join(BUILTIN_DATASETS)} "
            "or a path to a .npz or .csv file"
        )
    return text


def _switch(key: str, value: Any) -> bool:
    words = {"on": True, "true": True, "yes": True, "off": False, "false": False, "no": False}
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in words:
        return words[value.strip().lower()]
    raise ConfigError(f"{key} must be on or off (true or false); got {value!r}")


def _split_list(key: str, value: Any) -> list[Any]:
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    if isinstance(value, (list, tuple)):
        return list(value)
    raise ConfigError(f"{key} must be a comma-separated string or a list; got {value!r}")


def _sizes(key: str, value: Any) -> tuple[int, ...]:
    sizes = tuple(_integer(1)(key, item) for item in _split_list(key, value))
    if not sizes:
        raise ConfigError(f"{key} must list one or more layer sizes, e.g. 32 or 64,32; got {value!r}")
    return sizes


def _match(key: str, value: Any) -> tuple[str, ...]:
    items = _split_list(key, value)
    if items == ["none"]:
        return ()
    methods = tuple(_choice(MATCH_METHODS)(key, item) for item in items)
    if len(set(methods)) != len(methods):
        raise ConfigError(f"{key} lists a method twice: {value!r}")
    return methods


def _specs(key: str, value: Any) -> tuple[str, ...]:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, (list, tuple)) or not all(isinstance(item, str) for item in items):
        raise ConfigError(f"{key} must be a schedule spec or a list of them; got {value!r}")
    return tuple(items)


OPTIONS: tuple[OptionSpec, ...] = (
    OptionSpec("dataset", _dataset, "data set: digits, mnist, fashion-mnist, mnist1d, or a path to "
               "FILE.npz (arrays X and y) or FILE.csv (numeric columns)", "NAME|FILE"),
    OptionSpec("data_dir", _text, "folder with the IDX files of mnist or fashion-mnist "
               "({train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]); other datasets reject it",
               "DIR"),
    OptionSpec("test_fraction", _real(0, 1, low_open=True, high_open=True),
               "fraction of examples held out for testing, for data without a test split "
               "(digits, .npz, .csv)", "FRACTION"),
    OptionSpec("split_seed", _integer(0), "seed of the train/test split", "SEED"),
    OptionSpec("label_column", _text, "label column of a CSV file: index (negative counts from "
               "the end) or header name; default -1, the last", "COLUMN"),
    OptionSpec("train_examples", _integer(0), "use only the first N training examples "
               "(examples; 0 uses all)", "N"),
    OptionSpec("model", _choice(MODELS), "model: mlp (tanh hidden layers) or cnn (16/32-channel "
               "convolutions, image data only)", "|".join(MODELS)),
    OptionSpec("hidden", _sizes, "hidden layer widths of the mlp, comma-separated (units)", "N[,N...]"),
    OptionSpec("optimizer", _choice(OPTIMIZERS), "optimizer: sgd, momentum (torch SGD with "
               "momentum), velocity (VelocitySGD), adam, adamw", "|".join(OPTIMIZERS)),
    OptionSpec("lr", _real(0, math.inf, low_open=True, high_open=True),
               "peak learning rate of the default step schedule", "LR"),
    OptionSpec("momentum", _real(0, 1, low_open=False, high_open=True),
               "momentum of momentum and velocity, beta1 of adam and adamw (sgd ignores it)", "BETA"),
    OptionSpec("momentum_correction", _switch, "velocity only: rescale the velocity when the "
               "LR changes", "on|off"),
    OptionSpec("weight_decay", _real(0, math.inf, low_open=False, high_open=True),
               "weight decay coefficient (per update, multiplied by the LR)", "WD"),
    OptionSpec("wd_policy", _choice(("follow", "constant")), "follow: weight decay strength "
               "follows the LR schedule; constant: lr*wd is held fixed", "follow|constant"),
    OptionSpec("schedule", _specs, "schedule spec such as 'step(initial_lr=0.1, gamma=0.5, "
               "step_size=30)'; repeat for several; replaces the default step schedule", "SPEC"),
    OptionSpec("schedule_unit", _choice(("step", "epoch")), "time unit of --schedule specs: "
               "optimizer steps or epochs", "step|epoch"),
    OptionSpec("gamma", _real(0, 1, low_open=True, high_open=True),
               "LR factor at each drop of the default step schedule", "GAMMA"),
    OptionSpec("drops", _integer(1), "number of LR drops of the default step schedule, evenly "
               "spaced over the run (drops)", "N"),
    OptionSpec("match", _match, "exponential twins of the step schedule, comma-separated: "
               "half-life, final-lr, area, or none (default: all three without --schedule, "
               "none with it)", "METHODS"),
    OptionSpec("warmup", _integer(0), "linear warm-up before every schedule (steps)", "N"),
    OptionSpec("epochs", _integer(1), "length of each run (epochs)", "N"),
    OptionSpec("seeds", _integer(1), "runs per schedule, seeds 0..N-1 (runs)", "N"),
    OptionSpec("batch_size", _integer(1), "minibatch size (examples)", "N"),
    OptionSpec("sharpness_every", _integer(0), "measure sharpness every N updates (steps; 0 "
               "turns the probe off)", "N"),
    OptionSpec("sharpness_examples", _integer(1), "size of the fixed training subset the "
               "sharpness probe uses (examples)", "N"),
    OptionSpec("threads", _integer(1), "torch CPU threads; results repeat exactly for a fixed "
               "seed and thread count (threads)", "N"),
    OptionSpec("tensorboard", _switch, "also write TensorBoard event files per run", "on|off"),
    OptionSpec("report", _switch, "write report.md, report.html and figures at the end", "on|off"),
    OptionSpec("out", _text, "output folder (default: decaylab-runs/compare-YYYYmmdd-HHMMSS)", "DIR"),
)
_BY_KEY = {option.key: option for option in OPTIONS}


def config_from_mapping(values: Mapping[str, Any], *, source: str = "options") -> CompareConfig:
    """Validate ``values`` (keys with dashes or underscores) into a config.

    Missing keys take their defaults. Without an explicit ``match``, the
    default step schedule gets all three twins and user ``schedule`` specs
    get none. ``source`` names where the values came from in messages.

    >>> config_from_mapping({"batch-size": "64", "hidden": "64,32"}).hidden
    (64, 32)
    """
    converted: dict[str, Any] = {}
    for raw_key, value in values.items():
        key = normalise_key(raw_key)
        if key not in _BY_KEY:
            raise ConfigError(
                f"unknown option {raw_key!r} in {source}; valid keys: {', '.join(_BY_KEY)}"
            )
        if key in converted:
            raise ConfigError(f"option {key!r} given twice in {source}")
        converted[key] = _BY_KEY[key].convert(key, value)

    if "match" not in converted and converted.get("schedule"):
        converted["match"] = ()
    config = CompareConfig(**converted)
    _check_across_keys(config)
    return config


def normalise_key(key: str) -> str:
    """Return ``key`` with dashes replaced by underscores."""
    return key.replace("-", "_")


def _check_across_keys(config: CompareConfig) -> None:
    if config.schedule_unit == "epoch" and not config.schedule:
        raise ConfigError(
            "schedule_unit 'epoch' applies to --schedule specs; give one or use the default 'step'"
        )
    if config.optimizer not in ("velocity",) and not config.momentum_correction:
        raise ConfigError(
            f"momentum_correction off applies to the velocity optimizer only; "
            f"got optimizer {config.optimizer!r}"
        )


def read_config_file(path: str | Path) -> dict[str, Any]:
    """Read a flat TOML file of options; keys may use dashes or underscores."""
    try:
        import tomllib
    except ImportError:  # Python 3.10
        import tomli as tomllib

    path = Path(path)
    try:
        with open(path, "rb") as stream:
            values = tomllib.load(stream)
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except (OSError, tomllib.TOMLDecodeError) as error:
        raise ConfigError(f"cannot read config file {path}: {error}") from None

    for key, value in values.items():
        if isinstance(value, dict):
            raise ConfigError(f"{path}: option {key!r} is a table, but the file must contain flat keys only")
    return values


def config_to_toml(config: CompareConfig) -> str:
    """Return ``config`` as TOML text with every option, in declaration order."""
    import tomli_w

    values = {key: list(value) if isinstance(value, tuple) else value
              for key, value in asdict(config).items()}
    return tomli_w.dumps(values)


def config_differences(stored: Mapping[str, Any], current: CompareConfig) -> list[str]:
    """Return the keys whose values change results and differ between the two.

    ``stored`` is a mapping read back from ``config.toml``; it is validated
    first, so a stored file with unknown keys raises :class:`ConfigError`.
    """
    previous = config_from_mapping(stored, source="the stored config.toml")
    return [
        field.name
        for field in fields(CompareConfig)
        if field.name not in NON_RESULT_KEYS
        and getattr(previous, field.name) != getattr(current, field.name)
    ]
