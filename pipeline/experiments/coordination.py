"""One worker's part in an Optuna study that several workers may share, tune's trials or a grid's
cells, as one sequence: open the storage and the study, find or wait for the parent run, check
what is resumed, fail dead workers' trials, run trials (one at a time through `Study.optimize`,
or in batches through `ask`, trained together), fail dead trials again, and tell the last
worker (who logs the results) from those that return early while others still run.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import optuna
from optuna.storages import RDBStorage
from optuna.trial import TrialState

from pipeline import tracking
from pipeline.config.params import GRACE_PERIOD, HEARTBEAT_INTERVAL
from pipeline.experiments.train import TrainingDiverged
from pipeline.experiments.workers import (
    FINISHED,
    PARENT_RUN_ATTR,
    SurplusTrial,
    check_resumed,
    claim_trials,
    count_finished,
    create_storage,
    fail_dead_trials,
    open_study,
    storage_place,
    wait_for_parent_run,
)


@dataclass(frozen=True)
class ParentRun:
    """The study's MLflow parent run: its name, experiment, tags and params, and the earlier
    run that the worker creating the Optuna study reopens (None: a new run)."""

    name: str
    experiment: str
    tags: dict[str, str]
    params: dict[str, str]
    earlier: str | None = None


@dataclass(frozen=True)
class SharedStudy:
    study: optuna.Study
    storage: optuna.storages.BaseStorage
    parent_run_id: str

    def run_trials(self, objective: Callable[[optuna.Trial], float], n_trials: int, **options):
        """Up to `n_trials` trials of this worker (none below 1), a divergence or a surplus trial
        failing only its trial; then dead workers' trials failed. Whether this worker is the last
        one: no trial runs elsewhere (the others return early, and the last logs the results)."""
        if n_trials > 0:
            self.study.optimize(
                objective,
                n_trials=n_trials,
                catch=(TrainingDiverged, SurplusTrial),
                show_progress_bar=True,
                **options,
            )
        return self._is_last()

    def run_batches(
        self,
        train: Callable[[list[optuna.Trial]], None],
        n_trials: int,
        batch_size: Callable[[], int],
        timeout: float | None = None,
    ) -> bool:
        """Batches of this worker's trials, each of at most `batch_size()` trials trained by
        `train` (which tells the study their results), until the study's finished and running
        trials make `n_trials`, this worker has asked as many as were missing when it began, a
        trial is surplus (`claim_trials`), or `timeout` seconds have passed; then dead workers'
        trials failed. Whether this worker is the last one (see `run_trials`)."""
        budget = n_trials - count_finished(self.study)
        deadline = None if timeout is None else time.monotonic() + timeout
        while budget > 0 and (deadline is None or time.monotonic() < deadline):
            fail_dead_trials(self.study, self.storage)
            size = min(batch_size(), budget, self._missing(n_trials))
            trials = claim_trials(self.study, size, n_trials) if size > 0 else []
            budget -= len(trials)
            if trials:
                with heartbeats(self.study, self.storage, trials):
                    train(trials)
            if not trials or len(trials) < size:  # the study needs no more of this worker
                if budget > 0 and self._dead_trial_returned():
                    continue
                break
        return self._is_last()

    def _dead_trial_returned(self) -> bool:
        """Whether, within one grace period, a trial running elsewhere turned out dead and came
        back to be retried (RDB storage: a worker killed with -9 stops its heartbeats). A
        worker that the study needs no more waits that long while others' trials run, so that
        one killed meanwhile does not leave the study short; it returns as soon as none runs."""
        if not isinstance(self.storage, RDBStorage) or not self.storage.get_heartbeat_interval():
            return False
        interval = self.storage.get_heartbeat_interval()
        deadline = time.monotonic() + self.storage.grace_period + interval
        while time.monotonic() < deadline:
            if not self.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
                return False
            time.sleep(interval)
            fail_dead_trials(self.study, self.storage)
            if self.study.get_trials(deepcopy=False, states=(TrialState.WAITING,)):
                return True
        return False

    def _missing(self, n_trials: int) -> int:
        """Trials still to start: n_trials less those finished or running (any worker)."""
        states = (*FINISHED, TrialState.RUNNING)
        return n_trials - len(self.study.get_trials(deepcopy=False, states=states))

    def _is_last(self) -> bool:
        """Fail dead workers' trials; whether no trial runs elsewhere."""
        fail_dead_trials(self.study, self.storage)
        running = self.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
        if running:
            print("other workers still run trials: the last one to end logs the results")
        return not running


@contextlib.contextmanager
def heartbeats(
    study: optuna.Study, storage: optuna.storages.BaseStorage, trials: Sequence[optuna.Trial]
) -> Iterator[None]:
    """While the trials train, a thread records their heartbeats in an RDB storage that has
    them, every `heartbeat_interval` seconds, as `Study.optimize` does for its one trial; so
    another worker fails them only once this process is gone for `grace_period`."""
    interval = storage.get_heartbeat_interval() if isinstance(storage, RDBStorage) else None
    if not interval:
        yield
        return
    study_id = storage.get_study_id_from_name(study.study_name)
    ids = [storage.get_trial_id_from_study_id_trial_number(study_id, t.number) for t in trials]
    stopped = threading.Event()

    def beat():
        while True:
            for trial_id in ids:
                storage.record_heartbeat(trial_id)
            if stopped.wait(interval):
                return

    thread = threading.Thread(target=beat, name="trial-heartbeats", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stopped.set()
        thread.join()


@contextlib.contextmanager
def shared_study(
    storage: str,
    name: str,
    sampler: optuna.samplers.BaseSampler,
    pruner: optuna.pruners.BasePruner,
    parent: ParentRun,
    heartbeat_interval: int = HEARTBEAT_INTERVAL.default,
    grace_period: int = GRACE_PERIOD.default,
) -> Iterator[SharedStudy]:
    """The Optuna study `name` in the `storage` param's storage, joined as one more worker,
    inside its parent run (started, reopened, or the creator's, waited for); ParameterError
    when it is resumed with other search params or from another tracking store."""
    optuna_storage = create_storage(storage, heartbeat_interval, grace_period)
    study, created = open_study(optuna_storage, name, sampler, pruner)
    resumed = parent.earlier if created else wait_for_parent_run(study)
    check_resumed(study, parent.params, storage_place(storage))
    fail_dead_trials(study, optuna_storage)
    with tracking.run(
        parent.name, parent.experiment, parent.tags, resume_run_id=resumed
    ) as parent_run_id:
        study.set_user_attr(PARENT_RUN_ATTR, parent_run_id)
        tracking.log_params(parent.params)
        yield SharedStudy(study, optuna_storage, parent_run_id)
