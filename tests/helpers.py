"""What tests share: paths, the pipeline as a command (and as a process to signal), bad-input and
RUNNING-run checks, and test data on disk (IDX files cut from the real MNIST test set bundled
with the package)."""

import gzip
import subprocess
import sys
from pathlib import Path

import mlflow
import numpy as np

from pipeline.data.sources import bundled_idx

PROJECT_ROOT = Path(__file__).resolve().parents[1]
FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")


def running_runs(client: mlflow.MlflowClient) -> list:
    experiments = [experiment.experiment_id for experiment in client.search_experiments()]
    return client.search_runs(experiments, "attributes.status = 'RUNNING'")


# What TensorFlow's C++ side would print unasked: a quiet console has none of it.
TF_CHATTER = ("absl::InitializeLog", "oneDNN", "cpu_feature_guard", "NodeDef mentions")


def pipeline_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "pipeline", *args]


def start(*args: str) -> subprocess.Popen:
    return subprocess.Popen(
        pipeline_command(*args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def signal_at_epoch(process: subprocess.Popen, signum: int, epoch: int = 2) -> tuple[int, str]:
    """Send the signal once the process printed `epoch <epoch>/`; its exit code and stderr."""
    for line in process.stdout:
        if line.startswith(f"epoch {epoch}/"):
            break
    process.send_signal(signum)
    _, stderr = process.communicate(timeout=120)  # drains both pipes: a full one would block it
    return process.returncode, stderr


def assert_rejected(argv: list[str], message: str, capsys, client: mlflow.MlflowClient):
    """Bad input: exit code 2, one line on stderr containing `message`, no run left RUNNING."""
    from pipeline import cli

    capsys.readouterr()
    assert cli.main(argv) == 2
    stderr = capsys.readouterr().err
    assert message in stderr and stderr.count("\n") == 1
    assert running_runs(client) == []


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
