"""Workers of one Optuna study and their shared storage: who runs a trial, whether it still
lives, which trials are surplus or dead, opening the storage and the study, and the parent run.

Several workers (processes, machines) can run one study on an RDB storage (PostgreSQL): the
worker that creates the study creates the parent run, the others wait for its id; a trial that
would make the study overshoot `n_trials` is not run (it ends FAIL, tagged `surplus`); a dead
worker's trial is failed by the heartbeat (RDB) or on the next start (journal) and retried.
The study remembers the params it was created with: resuming it with other search params, or
from a tracking store without its parent run, stops with one line.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import sys
import time
import warnings

import optuna
from optuna.storages import JournalStorage, RDBStorage, RetryHeartbeatStaleTrialCallback
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState
from sqlalchemy.exc import IntegrityError, ProgrammingError

from pipeline import tracking
from pipeline.config.entry_points import ParameterError
from pipeline.config.params import GRACE_PERIOD, HEARTBEAT_INTERVAL, RDB_STORAGE_SCHEMES
from pipeline.config.tune import TuneConfig
from pipeline.config.validation import fields_with_role
from pipeline.lifecycle import is_alive, worker_id
from pipeline.secrets import redact
from pipeline.tracking import store

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)
PARENT_RUN_ATTR = "mlflow_parent_run_id"
WORKER_ATTR = "worker"
SURPLUS_ATTR = "surplus"
PARENT_WAIT_SECONDS = 60
PARAMS_ATTR = "params"  # the search params the study was created with


class _OneLineTrialFailures(logging.Filter):
    """Optuna's warning about a trial that raised, in one line: without the traceback (what it
    catches, a divergence or a surplus trial, is expected and said in the line) and without
    the second line saying that such a trial has no value."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.exc_info, record.exc_text = None, None
        return not record.getMessage().endswith("failed with value None.")


ONE_LINE_TRIAL_FAILURES = _OneLineTrialFailures()


def quiet_optuna():
    """Optuna's own lines off the console (we print one per trial, and its progress bar), its
    warnings about failed trials in one line each, and no warnings for the experimental APIs we
    use (heartbeats, their callback, the journal)."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    # the logger of Study.optimize's loop (its progress bar swaps the handlers: not there)
    logging.getLogger("optuna.study._optimize").addFilter(ONE_LINE_TRIAL_FAILURES)  # once
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)


def _end_trial_runs(study: optuna.Study, trial: optuna.trial.FrozenTrial):
    """The MLflow child run of a trial that died with its process, and the runs nested in it
    (a grid cell's): FAILED, not RUNNING."""
    parent_run_id = study.user_attrs.get(PARENT_RUN_ATTR)
    if parent_run_id:
        reason = "its worker process died; the Optuna trial was marked FAIL"
        for run in tracking.child_runs(parent_run_id, {"trial_number": str(trial.number)}):
            for nested in tracking.child_runs(run.info.run_id):
                tracking.end_stale_run(nested.info.run_id, reason)
            tracking.end_stale_run(run.info.run_id, reason)


def _retry_stale_trial(study: optuna.Study, trial: optuna.trial.FrozenTrial):
    """A dead worker's trial (RDB heartbeat callback, or `fail_interrupted_trials`): its child
    run ends FAILED, and the trial comes back WAITING once through Optuna's retry callback, which
    keeps its system attrs (a grid trial's `grid_id`, without which GridSampler fails on it) but
    not the dead worker's id: the retry is nobody's until a worker claims it."""
    _end_trial_runs(study, trial)
    retry = copy.deepcopy(trial)
    retry.user_attrs = {key: value for key, value in trial.user_attrs.items() if key != WORKER_ATTR}
    RetryHeartbeatStaleTrialCallback(max_retry=1)(study, retry)


def open_rdb_storage(
    url: str, heartbeat_interval: int, grace_period: int, attempts: int = 3
) -> RDBStorage:
    """Workers starting together on a new database race to create Optuna's tables: the losers'
    "duplicate key" or "relation already exists" goes away once the tables exist."""
    for attempt in range(attempts):
        try:
            return RDBStorage(
                url,
                heartbeat_interval=heartbeat_interval,
                grace_period=grace_period,
                heartbeat_stale_trial_callback=_retry_stale_trial,
            )
        except (IntegrityError, ProgrammingError):
            if attempt == attempts - 1:
                raise
            time.sleep(1)


def rdb_url(storage: str) -> str:
    """SQLAlchemy 2.1 maps a bare postgresql:// to psycopg 3; the installed driver is psycopg2."""
    if storage.startswith("postgresql://"):
        return "postgresql+psycopg2://" + storage.removeprefix("postgresql://")
    return storage


def storage_place(storage: str) -> str:
    """Where the `storage` param's studies live: its RDB URL, or the journal file (empty: the
    one named after the local tracking store)."""
    if storage.startswith(RDB_STORAGE_SCHEMES):
        return storage
    return storage.removeprefix("journal:") or str(store.default_journal())


def create_storage(
    storage: str,
    heartbeat_interval: int = HEARTBEAT_INTERVAL.default,
    grace_period: int = GRACE_PERIOD.default,
) -> optuna.storages.BaseStorage:
    """The `storage` param's Optuna storage: an RDB URL (with heartbeats), `journal:<path>`, or
    empty: a journal file named after the local tracking store; ParameterError (one line,
    password redacted) if it cannot open. A password in the URL gets a note once it opened."""
    quiet_optuna()
    place = storage_place(storage)
    try:
        if storage.startswith(RDB_STORAGE_SCHEMES):
            opened = open_rdb_storage(rdb_url(storage), heartbeat_interval, grace_period)
        else:
            opened = JournalStorage(JournalFileBackend(place))
    except Exception as error:  # sqlalchemy / driver / file errors: a bad URL, server down
        raise ParameterError(
            redact(f"Cannot open the Optuna storage {place!r}: {error}".splitlines()[0])
        ) from None
    if redact(storage) != storage:
        print("note: the storage URL holds a password, logged and shown as ***; keep it in "
              "PGPASSWORD or ~/.pgpass instead (docs/scaling-out.md)", file=sys.stderr)  # fmt: skip
    return opened


def open_study(
    storage: optuna.storages.BaseStorage,
    name: str,
    sampler: optuna.samplers.BaseSampler,
    pruner: optuna.pruners.BasePruner,
) -> tuple[optuna.Study, bool]:
    """The study of this name and whether this process created it (study names are unique in
    the storage, so of several workers starting together exactly one creates it)."""
    options = {"storage": storage, "study_name": name, "sampler": sampler, "pruner": pruner}
    try:
        return optuna.create_study(direction="maximize", **options), True
    except optuna.exceptions.DuplicatedStudyError:
        return optuna.load_study(**options), False


def wait_for_parent_run(study: optuna.Study) -> str | None:
    """The parent run id, which the study's creator stores right after creating the study;
    None if it never comes (the creator died first): then this worker creates the parent."""
    deadline = time.monotonic() + PARENT_WAIT_SECONDS
    while PARENT_RUN_ATTR not in study.user_attrs:
        if time.monotonic() > deadline:
            return None
        time.sleep(0.5)
    return study.user_attrs[PARENT_RUN_ATTR]


def check_resumed(study: optuna.Study, params: dict[str, str], storage: str):
    """A new study remembers its search params; resuming one with other search params, or from
    a tracking store without its parent run, is a ParameterError naming what differs."""
    resumable = fields_with_role(TuneConfig, "resumable")
    search = {key: value for key, value in params.items() if key not in resumable}
    if PARAMS_ATTR not in study.user_attrs:  # a new study, or one older than this check
        study.set_user_attr(PARAMS_ATTR, search)
    known = study.user_attrs[PARAMS_ATTR]
    changed = [f"{key}={known.get(key)!r}" for key in search if search[key] != known.get(key)]
    if changed:
        raise ParameterError(
            f"The Optuna study {study.study_name!r} was created with {', '.join(changed)}: "
            "resume it with those, or give the new params another study_name."
        )
    parent = study.user_attrs.get(PARENT_RUN_ATTR)
    if parent and not tracking.run_exists(parent):
        raise ParameterError(
            f"The Optuna study {study.study_name!r} belongs to another tracking store: its parent "
            f"run {parent} is not in {store.tracking_uri()}. Use another study_name, or delete the "
            f"study from {redact(storage)}."
        )


def count_finished(study: optuna.Study) -> int:
    return len(study.get_trials(deepcopy=False, states=FINISHED))


class SurplusTrial(RuntimeError):
    """Another trial makes this one unnecessary (a grid point done or running elsewhere)."""


def is_surplus(study: optuna.Study, trial_number: int, n_trials: int) -> bool:
    """Whether the finished trials plus those still running with a smaller number (started
    earlier, by any worker) make n_trials: then this trial is not needed. Counting only earlier
    trials means that of two workers starting the last trial together, exactly one runs it."""
    running = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    ahead = [trial for trial in running if trial.number < trial_number]
    return count_finished(study) + len(ahead) >= n_trials


def claim_trial(trial: optuna.Trial, n_trials: int) -> bool:
    """Record this worker on the trial; whether the study still needs it. A trial it does not
    need is tagged surplus and told FAIL: it is never run."""
    trial.set_user_attr(WORKER_ATTR, worker_id())
    if not is_surplus(trial.study, trial.number, n_trials):
        return True
    trial.set_user_attr(SURPLUS_ATTR, True)
    trial.study.tell(trial, state=TrialState.FAIL)
    print(f"trial {trial.number}: not run, {n_trials} trials are finished or running")
    return False


def claim_trials(study: optuna.Study, count: int, n_trials: int) -> list[optuna.Trial]:
    """Up to `count` new trials for this worker (Optuna's `ask`: retried trials first), fewer
    when the study needs no more; the first one it does not need is surplus (`claim_trial`)."""
    trials = []
    while len(trials) < count:
        trial = study.ask()
        if not claim_trial(trial, n_trials):
            break
        trials.append(trial)
    return trials


def claim_grid_point(trial: optuna.Trial):
    """Record this worker on a grid trial; raise SurplusTrial (and stop this worker's loop) when
    another trial holds the same params, complete or running: Optuna's GridSampler suggests
    running points again once no point is left unvisited, and a cell is trained once."""
    trial.set_user_attr(WORKER_ATTR, worker_id())
    others = trial.study.get_trials(
        deepcopy=False, states=(TrialState.COMPLETE, TrialState.RUNNING)
    )
    if any(other.number != trial.number and other.params == trial.params for other in others):
        trial.set_user_attr(SURPLUS_ATTR, True)
        trial.study.stop()
        raise SurplusTrial(f"{trial.params} is done or running in another trial")


def fail_interrupted_trials(study: optuna.Study):
    """Journal storage has no heartbeat: a RUNNING trial whose process is gone (kill -9) is
    marked FAIL, its child run FAILED, and it is retried as a stale RDB trial is."""
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if is_alive(trial.user_attrs.get(WORKER_ATTR, "")):
            continue
        # A GridSampler whose every point is visited stops the study in `after_trial`, which
        # outside `optimize` raises RuntimeError; `tell` stores the FAIL state regardless.
        with contextlib.suppress(RuntimeError):
            study.tell(trial.number, state=TrialState.FAIL)
        _retry_stale_trial(study, trial)
        print(f"trial {trial.number} was interrupted: marked FAIL, retried once")


def fail_dead_trials(study: optuna.Study, storage: optuna.storages.BaseStorage):
    """RDB storage: trials without heartbeat for grace_period (any host) go through
    `_retry_stale_trial`; the journal has no heartbeat: trials of dead processes on this host."""
    if isinstance(storage, JournalStorage):
        fail_interrupted_trials(study)
    else:
        optuna.storages.fail_stale_trials(study)
