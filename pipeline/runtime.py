"""Process-wide settings for training, made once by the entry point: `setup(backend)`.

The CLI calls it before it runs a command, and so do the tests and the bench; importing the
rest of the package changes nothing. It has to run before Keras is imported (Keras fixes its
backend then) and before TensorFlow runs anything (thread settings apply only until then).
"""

from __future__ import annotations

import contextlib
import importlib.abc
import os
import re
import sys
import tempfile
from pathlib import Path

JAX_CACHE = Path.home() / ".cache" / "dropout-pipeline" / "jax"
# What TensorFlow's C++ libraries log while they load, before they read TF_CPP_MIN_LOG_LEVEL.
LOAD_TIME_NOISE = re.compile(
    r"absl::InitializeLog|oneDNN custom operations|cpu_feature_guard|"
    r"To enable the following instructions"
)


def setup(backend: str = "tensorflow"):
    """Selects the Keras backend and makes its training deterministic, fast and quiet."""
    os.environ["KERAS_BACKEND"] = backend
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TF's C++ INFO and WARNING lines
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # model downloads
    os.environ.setdefault("MPLBACKEND", "Agg")  # figures are files: no display needed
    if backend == "jax":
        _setup_jax()  # and no TensorFlow: importing it costs ~3 s
    else:
        _setup_tensorflow()


@contextlib.contextmanager
def _load_time_noise_dropped():
    """Catches what is written to file descriptor 2 meanwhile and passes on all but the noise
    (TensorFlow 2.21 logs it through absl before TF_CPP_MIN_LOG_LEVEL applies)."""
    sys.stderr.flush()
    stderr = os.dup(2)
    with tempfile.TemporaryFile() as caught:
        os.dup2(caught.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(stderr, 2)
            os.close(stderr)
            caught.seek(0)
            lines = caught.read().decode(errors="replace").splitlines(keepends=True)
            sys.stderr.writelines(line for line in lines if not LOAD_TIME_NOISE.search(line))


def _setup_tensorflow():
    with _load_time_noise_dropped():
        import tensorflow as tf

    # Same seed => same numbers: TF picks deterministic kernels (no measurable cost for this MLP).
    tf.config.experimental.enable_op_determinism()
    # This MLP's matmuls are too small to split across threads: one intra-op thread leaves the
    # other cores to the input pipeline and the executor (~20% faster epochs on 2 cores, same
    # numbers). It only applies before TF starts; in a process that already ran TF it stays.
    with contextlib.suppress(RuntimeError):
        tf.config.threading.set_intra_op_parallelism_threads(1)
    # Each run builds a fresh model, so TF's "retracing" warning about it is expected noise.
    tf.get_logger().setLevel("ERROR")


class _WithoutTensorFlow(importlib.abc.MetaPathFinder):
    """`import tensorflow` fails as if it were not installed. Keras imports it wherever it is
    installed (to seed it, to look for its types when saving a model), ~3 s that JAX runs skip."""

    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] == "tensorflow":
            raise ModuleNotFoundError(f"{name} is not used with backend=jax", name=name)
        return None


def _setup_jax():
    if "tensorflow" not in sys.modules:
        sys.meta_path.insert(0, _WithoutTensorFlow())
    use_jax_cache()


def use_jax_cache():
    """XLA compiles every new program (a Keras model's steps ~2 s; a population's epoch ~3 s on
    2 cores); JAX's persistent cache serves the same executables to later runs of the same
    shape from disk. Set up with backend=jax, and by the population engine with either."""
    import jax

    if not jax.config.jax_compilation_cache_dir:  # JAX_COMPILATION_CACHE_DIR chooses another
        jax.config.update("jax_compilation_cache_dir", str(JAX_CACHE))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
