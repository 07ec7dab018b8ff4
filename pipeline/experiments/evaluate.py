"""Re-evaluate a logged model on the test set its train run used; never retrains.

With a baseline run, both models score the identical test examples and the run adds the paired
comparison: accuracy difference with a paired bootstrap CI and McNemar's exact test.
Everything the user named (runs, models, data) is resolved before the evaluate run starts, so
bad input leaves no run behind.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from pipeline import tracking
from pipeline.analysis import figures, scoring, significance
from pipeline.config.entry_points import EvaluateConfig, ModelDataConfig
from pipeline.config.params import CHAMPION_ALIAS
from pipeline.data.datasets import Dataset, load_dataset
from pipeline.tracking.train_run import (
    log_classification_artifacts,
    log_dataset,
    predict_and_score,
)

MISCLASSIFIED_SHOWN = 25


@dataclass(frozen=True)
class LoadedModel:
    name: str
    model_uri: str
    run_id: str | None
    params: dict[str, str]
    model: object


@dataclass(frozen=True)
class Scored:
    probabilities: np.ndarray
    metrics: dict[str, float]


@dataclass
class EvaluateResult:
    run_id: str
    metrics: dict[str, float]


def _load(model_uri: str, run_id: str, option: str) -> LoadedModel:
    """The model at `model_uri` (or run `run_id`'s model) and its run's name and params."""
    model_uri = model_uri or f"runs:/{run_id}/model"
    must_be = (
        "the id of an existing MLflow run, not deleted"
        if option.endswith("run_id")
        else "a model URI"
    )
    if run_id and not tracking.run_exists(run_id):  # unknown or deleted: clearer than the model's
        raise EvaluateConfig.invalid(option, must_be, run_id)
    try:
        model, source_run_id = tracking.load_keras_model(model_uri)
    except tracking.NotFound as error:
        got = run_id or model_uri
        raise EvaluateConfig.invalid(
            option, f"{must_be} with a logged Keras model ({model_uri}: {error})", got
        ) from None
    name, params = model_uri, {}
    if source_run_id:
        name, params, _ = tracking.run_params_and_tags(source_run_id)
    return LoadedModel(name, model_uri, source_run_id, params, model)


def _data_config(config: EvaluateConfig, source: LoadedModel) -> ModelDataConfig:
    """The source run's data (its test split is fixed by the dataset), or the user's override."""
    dataset = config.dataset or source.params.get("dataset", "")
    if not dataset:
        raise EvaluateConfig.invalid("dataset", "given for a model without a train run", "")
    overridden = config.dataset or config.data_dir
    data_dir = config.data_dir if overridden else source.params.get("data_dir", "")
    if data_dir and not os.path.isdir(data_dir):
        raise EvaluateConfig.invalid("data_dir", "an existing folder (the source run's)", data_dir)
    shared = {
        key: source.params[key] for key in ("validation_split", "seed") if key in source.params
    }
    return ModelDataConfig.from_strings({**shared, "dataset": dataset, "data_dir": data_dir})


def _check_takes_data(loaded: LoadedModel, dataset: Dataset, option: str):
    """The model takes this dataset's images and predicts its classes."""
    model_shape = tuple(loaded.model.input_shape[1:])
    classes = loaded.model.output_shape[-1]
    if model_shape != dataset.x_test.shape[1:] or classes != len(dataset.class_names):
        raise EvaluateConfig.invalid(
            option,
            f"a model for {dataset.name} images {dataset.x_test.shape[1:]} and "
            f"{len(dataset.class_names)} classes; its model takes {model_shape} -> {classes}",
            loaded.run_id or loaded.model_uri,
        )


def _check_baseline_data(baseline: LoadedModel, config: EvaluateConfig, dataset: Dataset):
    trained_on = baseline.params.get("dataset", dataset.name)
    if trained_on != dataset.name:
        raise EvaluateConfig.invalid(
            "baseline_run_id",
            f"a run trained on {dataset.name} like the evaluated model (it used {trained_on})",
            config.baseline_run_id,
        )


def _score(loaded: LoadedModel, dataset: Dataset) -> Scored:
    probabilities, metrics = predict_and_score(loaded.model, dataset.x_test, dataset.y_test)
    table = scoring.calibration_bins(dataset.y_test, probabilities)
    metrics["test_expected_calibration_error"] = scoring.expected_calibration_error(table)
    return Scored(probabilities, metrics)


def compare(y_true: np.ndarray, model: Scored, baseline: Scored, seed: int = 0) -> dict:
    """Paired comparison of two models' predictions on the same examples."""
    correct_model = model.probabilities.argmax(axis=1) == y_true
    correct_baseline = baseline.probabilities.argmax(axis=1) == y_true
    mcnemar = significance.mcnemar_exact(correct_model, correct_baseline)
    return {
        "baseline_test_accuracy": baseline.metrics["test_accuracy"],
        "baseline_test_macro_f1": baseline.metrics["test_macro_f1"],
        **significance.paired_accuracy_difference(correct_model, correct_baseline, seed),
        "mcnemar_p_value": mcnemar["mcnemar_p_value"],
        "only_model_correct": mcnemar["only_candidate_correct"],
        "only_baseline_correct": mcnemar["only_reference_correct"],
    }


def comparison_markdown(
    names: tuple[str, str], model: Scored, baseline: Scored, comparison: dict, alpha: float, n: int
) -> str:
    """`comparison.md`: which model is better on these examples, and whether it is significant."""
    difference = comparison["accuracy_difference"]
    low, high = (
        comparison["accuracy_difference_ci95_low"],
        comparison["accuracy_difference_ci95_high"],
    )
    p_value = comparison["mcnemar_p_value"]
    if p_value >= alpha:
        verdict = f"no significant difference between the two models at alpha {alpha:g}"
    else:
        better, worse = names if difference > 0 else names[::-1]
        verdict = f"**{better}** is more accurate than {worse}, significant at alpha {alpha:g}"
    rows = [
        ("accuracy", "test_accuracy", ".4f"),
        ("macro F1", "test_macro_f1", ".4f"),
        ("expected calibration error", "test_expected_calibration_error", ".4f"),
        ("tied top score", "test_tied_top_fraction", ".2%"),
    ]
    table = "\n".join(
        f"| {label} | {model.metrics[key]:{fmt}} | {baseline.metrics[key]:{fmt}} |"
        for label, key, fmt in rows
    )
    return f"""# {names[0]} vs {names[1]}

Both models scored on the same {n} test examples.

| | model: {names[0]} | baseline: {names[1]} |
|---|---|---|
{table}

- Accuracy difference (model - baseline): {difference:+.4f}, paired bootstrap 95% CI
  [{low:+.4f}, {high:+.4f}].
- McNemar's exact test: only the model right on {comparison["only_model_correct"]} examples, only
  the baseline right on {comparison["only_baseline_correct"]}; p = {p_value:.4g}.
- Verdict: {verdict}.

This compares two trained models on one test set; it does not include the variation between
training seeds. Whether a config (not a model) is better is what `mlflow run . -e study` answers.
"""


def _log_scored(scored: Scored, dataset: Dataset, title: str):
    tracking.log_metrics(scored.metrics)
    log_classification_artifacts(dataset.y_test, scored.probabilities, dataset.class_names, title)
    table = scoring.calibration_bins(dataset.y_test, scored.probabilities)
    tracking.log_text(table.to_csv(index=False), "calibration.csv")
    tracking.log_figure(
        figures.reliability_diagram_figure(table, f"Reliability diagram - {title}"),
        "reliability_diagram.png",
    )
    figure = figures.misclassified_figure(
        dataset.x_test, dataset.y_test, scored.probabilities, dataset.class_names,
        MISCLASSIFIED_SHOWN, f"Most confidently misclassified - {title}",
    )  # fmt: skip
    tracking.log_figure(figure, "misclassified.png")


def _log_comparison(
    config: EvaluateConfig,
    dataset: Dataset,
    names: tuple[str, str],
    scores: tuple[Scored, Scored],
) -> dict:
    comparison = compare(dataset.y_test, *scores, seed=config.seed)
    tracking.log_metrics(comparison)
    tracking.log_files({"comparison.json": comparison})
    tables = [
        scoring.confusion_matrix_table(
            dataset.y_test, scored.probabilities.argmax(axis=1), dataset.class_names
        )
        for scored in scores
    ]
    tracking.log_figure(
        figures.confusion_matrix_comparison_figure(*tables, names),
        "confusion_matrix_comparison.png",
    )
    markdown = comparison_markdown(names, *scores, comparison, config.alpha, len(dataset.y_test))
    tracking.log_text(markdown, "comparison.md")
    return comparison


def _description(model: LoadedModel, baseline: LoadedModel | None, metrics: dict) -> str:
    def link(loaded: LoadedModel) -> str:
        return (
            f"[{loaded.name}]({tracking.run_url(loaded.run_id)})" if loaded.run_id else loaded.name
        )

    text = f"Evaluation of {link(model)}: test accuracy {metrics['test_accuracy']:.4f}."
    if baseline is not None:
        text += (
            f" Against {link(baseline)}: difference {metrics['accuracy_difference']:+.4f} "
            f"(95% CI [{metrics['accuracy_difference_ci95_low']:+.4f}, "
            f"{metrics['accuracy_difference_ci95_high']:+.4f}]), McNemar p = "
            f"{metrics['mcnemar_p_value']:.4g}; see comparison.md."
        )
    return text


def evaluate(config: EvaluateConfig) -> EvaluateResult:
    option = "run_id" if config.run_id else "model_uri"
    model = _load(config.model_uri, config.run_id, option)
    baseline = None
    if config.baseline_run_id:
        baseline = _load("", config.baseline_run_id, "baseline_run_id")
    dataset = load_dataset(_data_config(config, model))
    _check_takes_data(model, dataset, option)
    scores = [_score(model, dataset)]
    if baseline is not None:
        _check_baseline_data(baseline, config, dataset)
        _check_takes_data(baseline, dataset, "baseline_run_id")
        scores.append(_score(baseline, dataset))

    name = f"evaluate-{model.name}" + (f"-vs-{baseline.name}" if baseline else "")
    tags = {
        "entry_point": "evaluate",
        "dataset": dataset.name,
        "data_source": dataset.source,
        "data_sha256": dataset.sha256,
        "model_uri": model.model_uri,
        "source_run_id": model.run_id or "",
        "baseline_run_id": config.baseline_run_id,
    }
    with tracking.run(name, tracking.experiment_name(dataset.name), tags) as run_id:
        tracking.log_params(config.to_params())
        log_dataset(dataset, ("test",))
        _log_scored(scores[0], dataset, model.name)
        metrics = dict(scores[0].metrics)
        if baseline is not None:
            names = (model.name, baseline.name)
            metrics.update(_log_comparison(config, dataset, names, tuple(scores)))
        if config.register_as:
            version = tracking.register_model(
                model.run_id, config.register_as, CHAMPION_ALIAS, model.model_uri
            )
            tracking.set_tags({"registered_model": f"{config.register_as}/{version}"})
        tracking.set_description(_description(model, baseline, metrics))
    return EvaluateResult(run_id, metrics)
