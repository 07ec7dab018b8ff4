"""Test data on disk: IDX files cut from the real MNIST test set bundled with the package."""

import gzip
from pathlib import Path

import numpy as np

from pipeline.data import bundled_idx


def write_idx(path: Path, array: np.ndarray):
    header = b"\x00\x00\x08" + bytes([array.ndim])
    header += b"".join(size.to_bytes(4, "big") for size in array.shape)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "wb") as stream:
        stream.write(header + array.astype(np.uint8).tobytes())


def bundled_mnist_test_set() -> tuple[np.ndarray, np.ndarray]:
    return bundled_idx("t10k-images-idx3-ubyte.gz"), bundled_idx("t10k-labels-idx1-ubyte.gz")


def mnist_data_dir(folder: Path, n_train: int = 8000, gz: bool = True) -> Path:
    """The real MNIST test set cut into a train / test data_dir of IDX files."""
    images, labels = bundled_mnist_test_set()
    suffix = ".gz" if gz else ""
    folder.mkdir(parents=True, exist_ok=True)
    write_idx(folder / f"train-images-idx3-ubyte{suffix}", images[:n_train])
    write_idx(folder / f"train-labels-idx1-ubyte{suffix}", labels[:n_train])
    write_idx(folder / f"t10k-images-idx3-ubyte{suffix}", images[n_train:])
    write_idx(folder / f"t10k-labels-idx1-ubyte{suffix}", labels[n_train:])
    return folder
