"""The paper's Tables 1-3 from the cached features of every run, and what the paper
does not show: the published detectors of Lee & AlRegib and GradNorm, the calibration
of every probability of "correct", and the LASSO's coefficients per layer and statistic."""

from functools import cache

import numpy as np
from sklearn.pipeline import Pipeline

from ... import metrics
from ...baselines import SingleMetricClassifier
from ...detectors._lee_alregib import lee_alregib_head
from ...meta import MetaClassifier
from ...metrics._calibration import reliability_bins
from ..in_distribution import in_distribution_scores
from ..scoring import evaluation_rows, meta_feature_indices, score_columns, selective_scores
from ..temperature import temperature_scaling

__all__ = ["run_tables", "pool_reliability", "THRESHOLD_ROWS", "CALIBRATION_TABLE",
           "COEFFICIENT_TABLE", "IN_DISTRIBUTION_TABLE", "COST_TABLE",
           "in_distribution_rows"]

# Table 1 rows: (label, target, column); {last_layer_weight} is the run's last Linear weight
THRESHOLD_ROWS = [
    ("Softmax baseline", "predicted", "softmax__max_prob"),
    ("Entropy", "predicted", "softmax__entropy"),
    ("Absolute norm", "predicted", "network__l1"),
    ("Euclidean norm", "predicted", "network__l2"),
    ("Minimum", "predicted", "network__min"),
    ("Maximum", "predicted", "network__max"),
    ("Standard deviation", "predicted", "network__std"),
    ("All-ones L2, network", "all_ones", "network__l2"),
    ("Uniform L1, network", "uniform", "network__l1"),
    ("GradNorm (last-layer weight L1)", "uniform", "{last_layer_weight}__l1"),
]
LINEAR_METHODS = [("GLM", "glm"), ("LASSO", "lasso"), ("Ridge", "ridge"),
                  ("Elastic net", "elastic_net")]
CALIBRATION_TABLE, COEFFICIENT_TABLE = "Calibration", "LASSO coefficients"
IN_DISTRIBUTION_TABLE, COST_TABLE = "In-distribution only", "Cost"


def _column(run, target, name):
    name = name.format(last_layer_weight=str(run["last_layer_weight"]))
    return list(run[f"columns__{target}"]).index(name)


def _meta_columns(run):
    return meta_feature_indices(run["columns__predicted"])


def _lee_alregib_columns(run):
    """Lee & AlRegib's features: the all-ones gradient's L2 norm per parameter tensor."""
    return [i for i, c in enumerate(run["columns__all_ones"])
            if c.endswith("__l2") and not c.startswith("network__")]


def _evaluation_rows(run, concept):
    return evaluation_rows(len(run[f"{concept}__predicted"]), run.get(f"known__{concept}"))


def _scores(confidence, run, concepts):
    """Scores of a confidence function for 'correct' against each concept; the 'wrong'
    column adds the test predictions' AURC and AUGRC (selective classification)."""
    test = confidence("test")
    negatives = {"wrong": test[run["y_test"] == 0]}
    for concept in concepts:
        negatives[concept] = confidence(concept)[_evaluation_rows(run, concept)]
    columns = score_columns(test[run["y_test"] == 1], negatives)
    columns["wrong"].update(selective_scores(run["y_test"], test))
    return columns


def _calibration(probability, run, concepts):
    """ECE of a probability of 'correct' on the test set, and on the test set plus every
    unknown concept's evaluation rows (all of them wrong by definition)."""
    test = probability("test")
    unknown = np.concatenate([probability(c)[_evaluation_rows(run, c)] for c in concepts])
    return {"test": {"ECE": metrics.expected_calibration_error(run["y_test"], test)},
            "test + unknowns": {"ECE": metrics.expected_calibration_error(
                np.r_[run["y_test"], np.zeros(len(unknown))], np.r_[test, unknown])}}


def _threshold(run, target, name):
    j = _column(run, target, name)
    base = SingleMetricClassifier(0).fit(run[f"validation__{target}"][:, [j]],
                                         run["y_validation"])
    return lambda s: base.signed_feature(run[f"{s}__{target}"][:, [j]])


def _training_set(run, target, columns, extra):
    """The validation set plus the known-unknown rows of ``extra`` (target 0)."""
    X = [run[f"validation__{target}"][:, columns]]
    y = [run["y_validation"]]
    for concept in extra:
        X.append(run[f"{concept}__{target}"][run[f"known__{concept}"]][:, columns])
        y.append(np.zeros(len(X[-1]), dtype=np.int64))
    return np.concatenate(X), np.concatenate(y)


def _fitted_probability(run, model, target, columns, extra=()):
    """Fit ``model`` on :func:`_training_set`; its P(correct) for any set name (computed
    once per set: the tables, the ECE and the reliability bins all read it)."""
    model.fit(*_training_set(run, target, columns, extra))
    return cache(lambda s: model.predict_proba(run[f"{s}__{target}"][:, columns])[:, 1])


def _table3_models(run, known_unknowns, random_state):
    """(label, model, target, columns, known unknowns) of Table 3's rows: the paper's NN
    meta classifier and Lee & AlRegib's detector, on the same training sets."""
    cols, lee = _meta_columns(run), _lee_alregib_columns(run)
    for k in range(len(known_unknowns) + 1):
        levels = "validation" + "".join(f" + {c}" for c in known_unknowns[:k])
        yield (f"NN: {levels}", MetaClassifier("nn", random_state=random_state),
               "predicted", cols, known_unknowns[:k])
        yield (f"Lee & AlRegib: {levels}",
               Pipeline(lee_alregib_head(random_state=random_state)), "all_ones", lee,
               known_unknowns[:k])


def _coefficients(run, lasso):
    """The LASSO's coefficients (on standardised features, log-odds of 'correct' per
    standard deviation) as {layer: {statistic: {coefficient, selected}}}."""
    out = {}
    names = np.asarray(run["columns__predicted"])[_meta_columns(run)]
    for name, value in zip(names, lasso.estimator_[-1].coef_.ravel()):
        group, statistic = str(name).rsplit("__", 1)
        out.setdefault(group, {})[statistic] = {"coefficient": float(value),
                                                "selected": float(value != 0)}
    return out


def in_distribution_rows(run):
    """{row: (score of a set's name, costs)}: the softmax baseline (for comparison, fitted
    on nothing) and the detectors that need no labelled error, fitted on the run's
    training images alone (:func:`~skgradunc.experiments.in_distribution.
    in_distribution_scores`)."""
    cols = _meta_columns(run)
    j = _column(run, "predicted", "softmax__max_prob")
    rows = {"Softmax baseline": (lambda s: run[f"{s}__predicted"][:, j], ())}
    rows.update(in_distribution_scores(run, lambda s: run[f"{s}__predicted"][:, cols],
                                       run["train__predicted"][:, cols], run["train__labels"]))
    return rows


def run_tables(run, concepts, known_unknowns, random_state=0, reliability=None):
    """{table: {row: {column: {score: value}}}} for one run.

    ``random_state`` seeds every meta classifier (saga and the NN meta classifier are
    random), so that the same cached run always gives the same tables;
    :func:`~skgradunc.experiments.run_protocol` passes ``seed + run``. A dict
    ``reliability`` receives, per probability row, the test set's reliability bins
    (:func:`skgradunc.metrics._calibration.reliability_bins`), for :func:`pool_reliability`.
    """
    tables = {"Table 1": {}, "Table 2": {}, "Table 3": {}, CALIBRATION_TABLE: {}}
    probabilities = {}
    for label, target, name in THRESHOLD_ROWS:
        tables["Table 1"][label] = _scores(_threshold(run, target, name), run, concepts)
    for label in ("Softmax baseline", "Entropy"):
        tables["Table 2"][label] = tables["Table 1"][label]
        tables["Table 3"][label] = tables["Table 1"][label]
    j = _column(run, "predicted", "softmax__max_prob")
    probabilities["Softmax baseline"] = lambda s: run[f"{s}__predicted"][:, j]
    # issue 28: the softmax maximum after one temperature fitted on the validation images
    scaled, _ = temperature_scaling(run, run["validation__labels"])
    probabilities["Softmax baseline, temperature-scaled"] = cache(lambda s: scaled(s).max(axis=1))
    cols = _meta_columns(run)
    for label, method in LINEAR_METHODS:
        meta = MetaClassifier(method, random_state=random_state)
        probabilities[label] = _fitted_probability(run, meta, "predicted", cols)
        tables["Table 2"][label] = _scores(probabilities[label], run, concepts)
        if method == "lasso":
            tables[COEFFICIENT_TABLE] = _coefficients(run, meta)
    table3 = _table3_models(run, known_unknowns, random_state)
    for label, model, target, columns, extra in table3:
        probabilities[label] = _fitted_probability(run, model, target, columns, extra)
        tables["Table 3"][label] = _scores(probabilities[label], run, concepts)
    tables[IN_DISTRIBUTION_TABLE], tables[COST_TABLE] = {}, {}
    for label, (score, costs) in in_distribution_rows(run).items():
        tables[IN_DISTRIBUTION_TABLE][label] = _scores(score, run, concepts)
        if costs:
            tables[COST_TABLE][label] = {"cost": {"s / 1000 images": float(sum(
                run[f"cost__{key}"] for key in costs))}}
    for label, probability in probabilities.items():
        tables[CALIBRATION_TABLE][label] = _calibration(probability, run, concepts)
        if reliability is not None:
            reliability[label] = reliability_bins(run["y_test"], probability("test"))
    return tables


def pool_reliability(per_run):
    """Reliability bins of several runs added up: {row: (samples, correct, sum p)}."""
    return {row: tuple(sum(run[row][i] for run in per_run) for i in range(3))
            for row in per_run[0]}
