"""Whether the runs trained together fit in memory: refused with one line before any run."""

from __future__ import annotations

import psutil

from pipeline.config.validation import Config
from pipeline.data.datasets import Dataset


def check_fits(replicas: int, runs: int, dataset: Dataset, config: Config, param: str = "replicas"):
    """Refuse (the config's one-line error on `param`) more runs trained together than half the
    available memory holds. Together train min(`replicas`, `runs`) runs: a `replicas` above the
    runs there are means all of them. Each needs its training and validation images about four
    times over (the epoch's order, the stacked input, the framework's copy and slack)."""
    together = min(replicas, runs)
    need = 4 * (dataset.x_train.nbytes + dataset.x_val.nbytes)
    available = psutil.virtual_memory().available
    most = max(1, int(available / 2 // need))
    if together > most:
        raise config.invalid(
            param,
            f"at most {most} runs trained together on this machine (each needs about "
            f"{need / 2**20:.1f} MiB; {available / 2**30:.1f} GiB are available)",
            str(getattr(config, param)),
        )
