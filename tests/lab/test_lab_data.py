"""Loaders of decaylab.lab.data on written files and on the installed data sets."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest

from lab_files import write_idx, write_idx_folder
from decaylab.lab.data import FASHION_MNIST_DIR, DataError, load_dataset, read_idx


# IDX files -----------------------------------------------------------------

@pytest.mark.parametrize("name", ["images.idx", "images.idx.gz"])
def test_read_idx_round_trip(tmp_path: Path, name: str) -> None:
    array = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    read = read_idx(write_idx(tmp_path / name, array))
    assert read.shape == (2, 3, 4)
    assert np.array_equal(read, array)


def test_read_idx_big_endian_int32(tmp_path: Path) -> None:
    values = np.array([1, -2, 70000], dtype=">i4")
    path = tmp_path / "ints.idx"
    path.write_bytes(bytes([0, 0, 0x0C, 1]) + (3).to_bytes(4, "big") + values.tobytes())
    assert read_idx(path).tolist() == [1, -2, 70000]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"\x01\x00\x08\x01\x00\x00\x00\x01\x05", "two zero bytes"),
        (b"\x00\x00\x07\x01\x00\x00\x00\x01\x05", "unknown IDX type code 0x07"),
        (b"\x00\x00\x08\x02\x00\x00\x00\x01", "header truncated"),
        (b"\x00\x00\x08\x01\x00\x00\x00\x03\x05", "need 3 data bytes, file has 1"),
    ],
)
def test_read_idx_rejects_corrupt_file(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "bad.idx"
    path.write_bytes(content)
    with pytest.raises(DataError, match=message):
        read_idx(path)


def test_read_idx_rejects_broken_gzip(tmp_path: Path) -> None:
    path = tmp_path / "bad.idx.gz"
    path.write_bytes(gzip.compress(b"\x00\x00\x08\x01\x00\x00\x00\x09" + b"x" * 9)[:-6])
    with pytest.raises(DataError, match="cannot read IDX file"):
        read_idx(path)


def test_idx_folder_loads_as_mnist(tmp_path: Path) -> None:
    folder = write_idx_folder(tmp_path / "idx", train=20, test=10, classes=3)
    data = load_dataset("mnist", data_dir=folder)
    assert data.x_train.shape == (20, 1, 28, 28)
    assert data.x_test.shape == (10, 1, 28, 28)
    assert data.num_classes == 3
    assert data.is_image
    assert abs(float(data.x_train.mean())) < 1e-5
    assert float(data.x_train.std()) == pytest.approx(1.0, abs=1e-4)


def test_idx_folder_missing_file(tmp_path: Path) -> None:
    folder = write_idx_folder(tmp_path / "idx")
    (folder / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DataError, match="t10k-labels-idx1-ubyte.gz .* not found"):
        load_dataset("fashion-mnist", data_dir=folder)


def test_idx_folder_count_mismatch(tmp_path: Path) -> None:
    folder = write_idx_folder(tmp_path / "idx", train=20)
    write_idx(folder / "train-labels-idx1-ubyte.gz", np.zeros(19, dtype=np.uint8))
    with pytest.raises(DataError, match="20 train images but 19 labels"):
        load_dataset("mnist", data_dir=folder)


# User files ----------------------------------------------------------------

def test_npz_flat_features(npz_file: Path) -> None:
    data = load_dataset(str(npz_file), test_fraction=0.25)
    assert data.x_train.shape == (45, 5)
    assert data.x_test.shape == (15, 5)
    assert data.x_train.dtype == np.float32
    assert data.y_train.dtype == np.int64
    assert not data.is_image
    assert np.allclose(data.x_train.mean(axis=0), 0.0, atol=1e-5)
    assert np.allclose(data.x_train.std(axis=0), 1.0, atol=1e-4)


def test_npz_three_dimensional_is_image(tmp_path: Path) -> None:
    path = tmp_path / "images.npz"
    np.savez(path, X=np.random.default_rng(0).random((30, 6, 6)), y=np.arange(30) % 2)
    data = load_dataset(str(path))
    assert data.input_shape == (1, 6, 6)
    assert data.is_image


@pytest.mark.parametrize(
    ("arrays", "message"),
    [
        ({"X": np.zeros((4, 2))}, "missing array y"),
        ({"features": np.zeros((4, 2)), "y": np.zeros(4)}, "missing array X"),
        ({"X": np.zeros((4, 2)), "y": np.zeros(3)}, "X has 4 rows but y has 3"),
        ({"X": np.array([[0.0, np.nan]] * 4), "y": np.arange(4) % 2}, "NaN or infinite"),
        ({"X": np.zeros((4, 2)), "y": np.array([1, 2, 1, 2])},
         r"found 2 distinct labels from 1 to 2 \(no example of label 0\), so remap them to 0\.\.1"),
        ({"X": np.zeros((4, 2)), "y": np.array([-1, 0, -1, 0])},
         r"found 2 distinct labels from -1 to 0, so remap them to 0\.\.1$"),
        ({"X": np.zeros((4, 2)), "y": np.array([0, 0.5, 1, 1])}, "non-integer"),
        ({"X": np.zeros((4, 2)), "y": np.zeros(4)}, "at least 2 classes"),
        ({"X": np.array([["a", "b"]] * 4), "y": np.arange(4) % 2}, "real numbers"),
    ],
)
def test_npz_rejects_bad_arrays(tmp_path: Path, arrays: dict, message: str) -> None:
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    with pytest.raises(DataError, match=message):
        load_dataset(str(path), test_fraction=0.25)


def test_npz_not_an_archive(tmp_path: Path) -> None:
    path = tmp_path / "broken.npz"
    path.write_bytes(b"not a zip file")
    with pytest.raises(DataError) as caught:
        load_dataset(str(path))
    message = str(caught.value)
    assert message.startswith(f"{path} is not a .npz file (a zip archive of .npy arrays)")
    assert "numpy.savez" in message
    assert "allow_pickle" not in message


def test_npz_with_zero_rows(tmp_path: Path) -> None:
    path = tmp_path / "empty.npz"
    np.savez(path, X=np.zeros((0, 5)), y=np.zeros(0, dtype=int))
    with pytest.raises(DataError, match=f"^{path}: X and y have 0 rows; .* at least 2 examples"):
        load_dataset(str(path))


def test_npz_nan_reported_by_file_row(tmp_path: Path) -> None:
    path = tmp_path / "nan.npz"
    features = np.random.default_rng(0).normal(size=(40, 3))
    features[5, 2] = np.nan
    features[30, 0] = np.inf
    np.savez(path, X=features, y=np.arange(40) % 2)
    with pytest.raises(DataError) as caught:
        load_dataset(str(path))
    message = str(caught.value)
    assert message.startswith(f"{path}: X contains NaN or infinite values in 2 rows")
    assert "first in X[5] (rows count from 0)" in message
    assert "split" not in message


def test_csv_nan_reported_by_file_line(tmp_path: Path) -> None:
    path = tmp_path / "nan.csv"
    rows = ["a,b,label"] + [f"{i},{2 * i},{i % 2}" for i in range(30)]
    rows[8] = "7,nan,1"
    # A blank line still counts in the line numbers a text editor shows.
    path.write_text("\n".join(rows[:3] + [""] + rows[3:]) + "\n")
    with pytest.raises(DataError, match="NaN or infinite values in 1 row, first on line 10, column 2"):
        load_dataset(str(path))


def test_csv_not_utf8_names_file(tmp_path: Path) -> None:
    path = tmp_path / "latin1.csv"
    path.write_bytes(b"a,b,label\n1,2,0\n\xff,3,1\n")
    with pytest.raises(DataError) as caught:
        load_dataset(str(path))
    message = str(caught.value)
    assert message.startswith(f"{path} is not UTF-8 text: byte 0xff")
    assert "save the CSV file as UTF-8" in message


def test_csv_byte_order_mark_ignored(tmp_path: Path) -> None:
    path = tmp_path / "bom.csv"
    text = "".join(f"{i},{i * 0.5},{i % 2}\n" for i in range(10))
    path.write_bytes(b"\xef\xbb\xbf" + text.encode())
    data = load_dataset(str(path), test_fraction=0.2)
    # Without the mark removed, line 1 would read as a header and be dropped.
    assert len(data.y_train) + len(data.y_test) == 10


def test_csv_label_first_suggests_label_column(tmp_path: Path) -> None:
    path = tmp_path / "label_first.csv"
    rows = ["label,f0,f1"] + [f"{i % 2},{i * 0.25 + 0.1},{i * 0.5 + 0.3}" for i in range(10)]
    path.write_text("\n".join(rows) + "\n")
    with pytest.raises(DataError) as caught:
        load_dataset(str(path))
    message = str(caught.value)
    assert "label column 'f1' (column 3 of 3, from --label-column -1)" in message
    assert "non-integer value 0.3 on line 2" in message
    assert "pass --label-column NAME or INDEX" in message
    assert load_dataset(str(path), label_column="label").num_classes == 2


def test_labels_with_gaps_listed(tmp_path: Path) -> None:
    path = tmp_path / "gaps.npz"
    np.savez(path, X=np.zeros((8, 2)), y=np.array([3, 7] * 4))
    with pytest.raises(DataError, match=r"from 3 to 7 \(no example of labels 0, 1, 2, 4, 5 and 1 "
                       r"more\), so remap them to 0\.\.1"):
        load_dataset(str(path))


@pytest.mark.parametrize("name", ["digits", "mnist1d", "npz"])
def test_data_dir_rejected_where_unused(npz_file: Path, tmp_path: Path, name: str) -> None:
    dataset = str(npz_file) if name == "npz" else name
    with pytest.raises(DataError, match=f"data_dir applies only to mnist and fashion-mnist .*"
                       f"drop --data-dir {tmp_path}"):
        load_dataset(dataset, data_dir=tmp_path)


def test_csv_header_and_named_label(tmp_path: Path) -> None:
    path = tmp_path / "data.csv"
    rows = ["label,a,b"] + [f"{i % 2},{i},{2 * i}" for i in range(10)]
    path.write_text("\n".join(rows) + "\n")
    data = load_dataset(str(path), label_column="label", test_fraction=0.2)
    assert data.x_train.shape == (8, 2)
    assert sorted(np.concatenate([data.y_train, data.y_test]).tolist()) == [0] * 5 + [1] * 5


def test_csv_without_header_uses_last_column(tmp_path: Path) -> None:
    path = tmp_path / "data.csv"
    path.write_text("".join(f"{i},{i * 0.5},{i % 3}\n" for i in range(12)))
    data = load_dataset(str(path), test_fraction=0.25)
    assert data.x_train.shape == (9, 2)
    assert data.num_classes == 3


@pytest.mark.parametrize(
    ("text", "label_column", "message"),
    [
        ("a,b,y\n1,x,0\n2,3,1\n", "-1", "line 2, column 2: 'x' is not a number"),
        ("a,b\n1,0\n2,1\n", "target", "label column 'target' not found"),
        ("1,2,0\n3,4,1\n", "5", "label column index 5 is out of range"),
        ("1,2,0\n3,4\n", "-1", "line 2 has 2 columns, expected 3"),
        ("a,b,y\n", "-1", "header but no data rows"),
        ("", "-1", "no rows"),
        ("1,nan,0\n3,4,1\n1,2,0\n3,4,1\n", "-1", "NaN or infinite"),
    ],
)
def test_csv_rejects_bad_content(tmp_path: Path, text: str, label_column: str, message: str) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(DataError, match=message):
        load_dataset(str(path), label_column=label_column, test_fraction=0.5)


def test_unknown_name_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="unknown dataset 'cifar10'"):
        load_dataset("cifar10")
    with pytest.raises(DataError, match="data file not found"):
        load_dataset(str(tmp_path / "absent.npz"))


# Split ---------------------------------------------------------------------

def test_split_is_deterministic(npz_file: Path) -> None:
    first = load_dataset(str(npz_file), split_seed=5)
    second = load_dataset(str(npz_file), split_seed=5)
    other = load_dataset(str(npz_file), split_seed=6)
    assert np.array_equal(first.x_train, second.x_train)
    assert np.array_equal(first.y_test, second.y_test)
    assert not np.array_equal(first.x_train, other.x_train)


def test_split_fraction_and_train_examples(npz_file: Path) -> None:
    data = load_dataset(str(npz_file), test_fraction=0.5, train_examples=10)
    assert len(data.y_test) == 30
    assert len(data.y_train) == 10
    with pytest.raises(DataError, match="train_examples=31 exceeds the 30 training examples"):
        load_dataset(str(npz_file), test_fraction=0.5, train_examples=31)
    with pytest.raises(DataError, match="test_fraction must be in"):
        load_dataset(str(npz_file), test_fraction=1.0)


def test_standardisation_uses_train_statistics(tmp_path: Path) -> None:
    path = tmp_path / "shift.npz"
    features = np.arange(40, dtype=np.float64).reshape(40, 1)
    np.savez(path, X=features, y=np.arange(40) % 2)
    data = load_dataset(str(path), test_fraction=0.5, split_seed=0)
    assert float(data.x_train.mean()) == pytest.approx(0.0, abs=1e-5)
    # The test split is scaled with the training mean and std, so its mean
    # is not exactly zero.
    assert abs(float(data.x_test.mean())) > 1e-3


# Installed data sets -------------------------------------------------------

def test_digits_installed() -> None:
    data = load_dataset("digits")
    assert data.x_train.shape == (1438, 1, 8, 8)
    assert data.x_test.shape == (359, 1, 8, 8)
    assert data.num_classes == 10
    assert set(np.unique(data.y_train).tolist()) == set(range(10))


def test_mnist1d_generated() -> None:
    pytest.importorskip("mnist1d")
    data = load_dataset("mnist1d")
    assert data.x_train.shape == (4000, 40)
    assert data.x_test.shape == (1000, 40)
    assert data.num_classes == 10
    assert not data.is_image


def test_mnist_from_pureml() -> None:
    pytest.importorskip("pureml")
    pytest.importorskip("zarr")
    data = load_dataset("mnist", train_examples=1000)
    assert data.x_train.shape == (1000, 1, 28, 28)
    assert data.x_test.shape == (10000, 1, 28, 28)
    assert np.bincount(data.y_test).tolist()[:3] == [980, 1135, 1032]


@pytest.mark.skipif(not FASHION_MNIST_DIR.is_dir(), reason="dataset-fashion-mnist not installed")
def test_fashion_mnist_installed() -> None:
    data = load_dataset("fashion-mnist")
    assert data.x_train.shape == (60000, 1, 28, 28)
    assert data.x_test.shape == (10000, 1, 28, 28)
    assert np.bincount(data.y_train).tolist() == [6000] * 10


def test_fashion_mnist_pixel_statistics() -> None:
    if not FASHION_MNIST_DIR.is_dir():
        pytest.skip("dataset-fashion-mnist not installed")
    pixels = read_idx(FASHION_MNIST_DIR / "train-images-idx3-ubyte.gz") / 255.0
    assert float(pixels.mean()) == pytest.approx(0.2860, abs=5e-4)
    assert float(pixels.std()) == pytest.approx(0.3530, abs=5e-4)

