"""Train runs: members trained by an engine (`pipeline.engines`), each logged by a `TrainRun`.

`train` is the train entry point's one run (the active run, or `mlflow run`'s); `train_members`
trains a study's or a trial's members as child runs of a parent, `replicas` of one shape per
engine call. Either way the engine reports every epoch here, where each run logs it, stops when
its loss is not finite, and the hooks (e.g. Optuna's pruning report) see the live members'
metrics; a signal that arrived meanwhile is raised at the epoch's end.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import keras

from pipeline import lifecycle, tracking
from pipeline.config.entry_points import TrainConfig
from pipeline.config.validation import role_key
from pipeline.data.datasets import Dataset, load_dataset
from pipeline.engines.base import Engine, Member, OnEpoch, TrainingDiverged
from pipeline.tracking.train_run import GROUP_FLUSH_SECONDS, KILLED_ON, TrainRun

__all__ = ["TrainingDiverged"]

EpochHook = Callable[[int, dict[int, dict[str, float]]], None]  # epoch, live members' metrics


def diverged(member: Member) -> BaseException:
    """Why a stopped member's run ends: by default its loss stopped being finite."""
    return TrainingDiverged(member.stopped)


@dataclass(frozen=True)
class Supervision:
    """How runs are watched while they train: hooks that see each epoch's live members (e.g.
    Optuna's pruning report, which may raise or stop members), the exceptions that end a run
    KILLED rather than FAILED (Ctrl-C and SIGTERM; a pruned trial), and the exception a stopped
    member's run ends with (a divergence by default; a pruned trial's TrialPruned)."""

    epoch_hooks: Sequence[EpochHook] = ()
    killed_on: tuple[type[BaseException], ...] = KILLED_ON
    stop_error: Callable[[Member], BaseException] = diverged


UNSUPERVISED = Supervision()


@dataclass
class TrainResult:
    run_id: str
    history: dict[str, list[float]] = field(default_factory=dict)
    test_metrics: dict[str, float] = field(default_factory=dict)


def engine_for(name: str) -> Engine:
    """The engine of the `engine` param, imported when first used."""
    if name == "keras":
        from pipeline.engines.keras_engine import KerasEngine

        return KerasEngine()
    from pipeline.engines.population import PopulationEngine

    return PopulationEngine()


def _progress(epoch: int, epochs: int, metrics: dict[int, dict[str, float]]) -> str:
    """One line per epoch: a run's metrics, or a group's runs and their val_accuracy range."""
    if len(metrics) == 1:
        [m] = metrics.values()
        return (
            f"epoch {epoch}/{epochs}  loss {m['loss']:.4f}  accuracy {m['accuracy']:.4f}  "
            f"val_loss {m['val_loss']:.4f}  val_accuracy {m['val_accuracy']:.4f}  "
            f"{m['epoch_seconds']:.1f}s"
        )
    accuracies = [m["val_accuracy"] for m in metrics.values()]
    return (
        f"epoch {epoch}/{epochs}  {len(metrics)} runs  val_accuracy {min(accuracies):.4f} to "
        f"{max(accuracies):.4f}"
    )


def epoch_logger(
    runs: Sequence[TrainRun], members: Sequence[Member], hooks: Sequence[EpochHook]
) -> OnEpoch:
    """The engine's callback: each run logs its epoch; a non-finite loss stops its member; the
    hooks see the live members; then a pending signal is raised (a safe point)."""

    def on_epoch(epoch: int, metrics: dict[int, dict[str, float]]):
        for index, values in metrics.items():
            members[index].stopped = runs[index].epoch(epoch, values)
        live = {index: values for index, values in metrics.items() if not members[index].stopped}
        if metrics:
            print(_progress(epoch, members[0].config.epochs, metrics), flush=True)
        if live:
            for hook in hooks:
                hook(epoch, live)
        lifecycle.raise_pending()

    return on_epoch


def train(
    config: TrainConfig,
    dataset: Dataset | None = None,
    parent_run_id: str | None = None,
    tags: dict[str, str] | None = None,
    supervision: Supervision = UNSUPERVISED,
) -> TrainResult:
    """Train one model as the active MLflow run and return its history and test metrics."""
    keras_trains = config.engine == "keras"
    if keras_trains and config.backend != keras.backend.backend():  # fixed at Keras' import
        raise config.invalid(
            "backend",
            f"the Keras backend this process imported ({keras.backend.backend()}); set "
            "KERAS_BACKEND before importing keras, or use the CLI",
            config.backend,
        )
    member = Member(config, dataset or load_dataset(config), tags or {})
    engine = engine_for(config.engine)
    experiment = tracking.experiment_name(config.dataset)
    killed_on, hooks = supervision.killed_on, supervision.epoch_hooks
    with tracking.run(config.run_name, experiment, {}, parent_run_id, killed_on) as run_id:
        run = TrainRun(run_id, config, member.dataset)
        run.begin(engine.name, engine.device, member.tags)
        member.run_id = run_id
        [weights] = engine.fit([member], epoch_logger([run], [member], hooks))
        if member.stopped:
            raise TrainingDiverged(member.stopped)
        run.finish(member.spec, weights)
    return TrainResult(run_id, run.history, run.test_metrics)


def groups(members: Sequence[Member], size: int) -> list[list[Member]]:
    """Members of the same shape (the fields whose role is `shape`) in groups of at most
    `size`, in their order."""
    by_shape: dict[tuple, list[Member]] = {}
    for member in members:
        by_shape.setdefault(role_key(member.config, "shape"), []).append(member)
    return [
        same[start : start + size]
        for same in by_shape.values()
        for start in range(0, len(same), size)
    ]


def _begin_children(group: Sequence[Member], parent_run_id: str, engine: Engine) -> list:
    """A child run per member, created by id, its params and tags logged."""
    group_tag = {"replica_group": uuid.uuid4().hex[:12]} if len(group) > 1 else {}
    runs = []
    for member in group:
        run = TrainRun.create(
            parent_run_id,
            member.config,
            member.dataset,
            engine.name,
            engine.device,
            {**member.tags, **group_tag},
            flush_seconds=GROUP_FLUSH_SECONDS,
        )
        member.run_id = run.run_id
        runs.append(run)
    return runs


def train_group(
    group: Sequence[Member], parent_run_id: str, engine: Engine, supervision=UNSUPERVISED
) -> list[TrainResult | None]:
    """One engine call: the members (one shape) as child runs; None for a member that stopped
    (its run ended with `supervision.stop_error`: FAILED with the reason by default)."""
    runs, weights = fit_group(group, parent_run_id, engine, supervision)
    return finish_group(runs, group, weights, supervision)


def fit_group(
    group: Sequence[Member], parent_run_id: str, engine: Engine, supervision=UNSUPERVISED
) -> tuple[list[TrainRun], list]:
    """The members' child runs begun and trained by one engine call; their runs and weights.
    Whatever stops the call ends every run (KILLED, or FAILED with the reason)."""
    runs = _begin_children(group, parent_run_id, engine)
    try:
        weights = engine.fit(group, epoch_logger(runs, group, supervision.epoch_hooks))
    except BaseException as error:
        _end_running(runs, group, error, supervision)
        raise
    return runs, weights


def finish_group(
    runs: Sequence[TrainRun], group: Sequence[Member], weights: list, supervision=UNSUPERVISED
) -> list[TrainResult | None]:
    """Each trained member's run finished (test results, artifacts, model) and ended; a member
    that stopped ends with `supervision.stop_error` (None in its place)."""
    results = []
    try:
        for run, member, trained in zip(runs, group, weights, strict=True):
            if member.stopped:
                run.end(supervision.stop_error(member), supervision.killed_on)
                results.append(None)
                continue
            with tracking.continued(run.run_id, supervision.killed_on):
                run.finish(member.spec, trained)
            results.append(TrainResult(run.run_id, run.history, run.test_metrics))
    except BaseException as error:
        _end_running(runs, group, error, supervision)
        raise
    return results


def _end_running(runs: Sequence[TrainRun], group: Sequence[Member], error, supervision):
    """The runs still running end for `error`, those of stopped members for their reason."""
    killed_on = supervision.killed_on
    for run, member in zip(runs, group, strict=True):
        if tracking.is_running(run.run_id):
            run.end(supervision.stop_error(member) if member.stopped else error, killed_on)


def train_members(
    members: Sequence[Member], parent_run_id: str, replicas: int, supervision=UNSUPERVISED
) -> list[TrainResult]:
    """Each member as a child run, `replicas` of one shape per engine call (the keras engine
    trains one at a time); results in the members' order. A group's runs are finished (scored,
    their artifacts and models logged) in a background thread while the next group trains:
    on a GPU that logging would otherwise take most of the time. Raises TrainingDiverged,
    naming every member whose loss stopped being finite, once all have trained."""
    engine = engine_for(members[0].config.engine) if members else None
    size = 1 if engine is None or engine.name == "keras" else replicas
    finishing = {}
    with ThreadPoolExecutor(1, thread_name_prefix="finish") as finisher:
        for group in groups(members, size):
            runs, weights = fit_group(group, parent_run_id, engine, supervision)
            finishing[tuple(group)] = finisher.submit(
                finish_group, runs, group, weights, supervision
            )
    results = {}
    for group, finished in finishing.items():
        results.update(zip(map(id, group), finished.result(), strict=True))
    diverged = [member for member in members if member.stopped]
    if diverged:
        reasons = "; ".join(dict.fromkeys(member.stopped for member in diverged))  # each once
        raise TrainingDiverged(f"{len(diverged)} of {len(members)} runs: {reasons}")
    return [results[id(member)] for member in members]
