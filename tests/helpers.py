"""Test data on disk: IDX files cut from the real MNIST test set in ../shared."""

import gzip
from pathlib import Path

import numpy as np
import pytest
from conftest import SHARED_MNIST

from pipeline.data import read_idx


def write_idx(path: Path, array: np.ndarray):
    header = b"\x00\x00\x08" + bytes([array.ndim])
    header += b"".join(size.to_bytes(4, "big") for size in array.shape)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "wb") as stream:
        stream.write(header + array.astype(np.uint8).tobytes())


def shared_mnist() -> tuple[np.ndarray, np.ndarray]:
    if not SHARED_MNIST.is_dir():
        pytest.skip("../shared/data/mnist-t10k is not in this checkout")
    images = read_idx(SHARED_MNIST / "t10k-images-idx3-ubyte.gz")
    labels = read_idx(SHARED_MNIST / "t10k-labels-idx1-ubyte.gz")
    return images, labels


def mnist_data_dir(folder: Path, n_train: int = 8000, gz: bool = True) -> Path:
    """The real MNIST test set cut into a train / test data_dir of IDX files."""
    images, labels = shared_mnist()
    suffix = ".gz" if gz else ""
    folder.mkdir(parents=True, exist_ok=True)
    write_idx(folder / f"train-images-idx3-ubyte{suffix}", images[:n_train])
    write_idx(folder / f"train-labels-idx1-ubyte{suffix}", labels[:n_train])
    write_idx(folder / f"t10k-images-idx3-ubyte{suffix}", images[n_train:])
    write_idx(folder / f"t10k-labels-idx1-ubyte{suffix}", labels[n_train:])
    return folder
