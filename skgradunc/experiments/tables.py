"""The paper's Tables 1-3 from the cached features of every run."""

import numpy as np

from .. import metrics
from ..baselines import SingleMetricClassifier
from ..meta import MetaClassifier

__all__ = ["run_tables", "aggregate", "SCORES", "THRESHOLD_ROWS"]

SCORES = {"AUROC": metrics.auroc, "AUPR-In": metrics.aupr_in, "AUPR-Out": metrics.aupr_out,
          "FPR@95%TPR": metrics.fpr_at_tpr}
# Table 1 rows: (label, target, column)
THRESHOLD_ROWS = [
    ("Softmax baseline", "predicted", "softmax__max_prob"),
    ("Entropy", "predicted", "softmax__entropy"),
    ("Absolute norm", "predicted", "network__l1"),
    ("Euclidean norm", "predicted", "network__l2"),
    ("Minimum", "predicted", "network__min"),
    ("Maximum", "predicted", "network__max"),
    ("Standard deviation", "predicted", "network__std"),
    ("All-ones L2 (Lee & AlRegib)", "all_ones", "network__l2"),
    ("Uniform L1 (GradNorm)", "uniform", "network__l1"),
]
LINEAR_METHODS = [("GLM", "glm"), ("LASSO", "lasso"), ("Ridge", "ridge"),
                  ("Elastic net", "elastic_net")]


def _column(run, target, name):
    return list(run[f"columns__{target}"]).index(name)


def _meta_columns(run):
    """Every predicted-target feature but the softmax baseline (as the paper's Table 2)."""
    return [i for i, c in enumerate(run["columns__predicted"]) if c != "softmax__max_prob"]


def _evaluation_rows(run, concept):
    n = len(run[f"{concept}__predicted"])
    known = run.get(f"known__{concept}")
    return np.setdiff1d(np.arange(n), known) if known is not None else np.arange(n)


def _scores(confidence, run, concepts):
    """Scores of a confidence function for 'correct' against each concept."""
    test = confidence("test")
    correct, wrong = test[run["y_test"] == 1], test[run["y_test"] == 0]
    negatives = {"wrong": wrong}
    for concept in concepts:
        negatives[concept] = confidence(concept)[_evaluation_rows(run, concept)]
    negatives["All"] = np.concatenate(list(negatives.values()))
    out = {}
    for column, negative in negatives.items():
        labels = np.r_[np.ones(len(correct)), np.zeros(len(negative))]
        scores = np.r_[correct, negative]
        out[column] = {name: fn(labels, scores) for name, fn in SCORES.items()}
    return out


def _threshold(run, target, name):
    j = _column(run, target, name)
    base = SingleMetricClassifier(0).fit(run[f"validation__{target}"][:, [j]],
                                         run["y_validation"])
    return lambda s: base.signed_feature(run[f"{s}__{target}"][:, [j]])


def _meta(run, method, random_state, extra=()):
    """A meta classifier trained on the validation set plus known-unknown rows (target 0)."""
    cols = _meta_columns(run)
    X = [run["validation__predicted"][:, cols]]
    y = [run["y_validation"]]
    for concept in extra:
        X.append(run[f"{concept}__predicted"][run[f"known__{concept}"]][:, cols])
        y.append(np.zeros(len(X[-1]), dtype=np.int64))
    meta = MetaClassifier(method, random_state=random_state)
    meta.fit(np.concatenate(X), np.concatenate(y))
    return lambda s: meta.predict_proba(run[f"{s}__predicted"][:, cols])[:, 1]


def run_tables(run, concepts, known_unknowns, random_state=0):
    """{table: {row: {column: {score: value}}}} for one run.

    ``random_state`` seeds every meta classifier (saga and the NN meta classifier are
    random), so that the same cached run always gives the same tables;
    :func:`~skgradunc.experiments.run_protocol` passes ``seed + run``.
    """
    tables = {"Table 1": {}, "Table 2": {}, "Table 3": {}}
    for label, target, name in THRESHOLD_ROWS:
        tables["Table 1"][label] = _scores(_threshold(run, target, name), run, concepts)
    for label in ("Softmax baseline", "Entropy"):
        tables["Table 2"][label] = tables["Table 1"][label]
        tables["Table 3"][label] = tables["Table 1"][label]
    for label, method in LINEAR_METHODS:
        tables["Table 2"][label] = _scores(_meta(run, method, random_state), run, concepts)
    for k in range(len(known_unknowns) + 1):
        label = "NN: validation" + "".join(f" + {c}" for c in known_unknowns[:k])
        tables["Table 3"][label] = _scores(_meta(run, "nn", random_state, known_unknowns[:k]),
                                           run, concepts)
    return tables


def aggregate(per_run):
    """Mean and standard error of the mean over runs, for every cell."""
    out = {}
    for table, rows in per_run[0].items():
        out[table] = {}
        for row, columns in rows.items():
            out[table][row] = {}
            for column, scores in columns.items():
                out[table][row][column] = {}
                for score in scores:
                    values = np.array([run[table][row][column][score] for run in per_run])
                    sem = values.std(ddof=1) / np.sqrt(len(values)) if len(values) > 1 else 0.0
                    out[table][row][column][score] = {"mean": float(values.mean()),
                                                      "sem": float(sem), "runs": len(values)}
    return out
