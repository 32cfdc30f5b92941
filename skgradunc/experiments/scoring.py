"""What both protocols' tables share: the scores of a confidence against negatives, the
rows a concept is scored on, the meta classifiers' features, mean and standard error over
runs."""

import numpy as np

from .. import metrics

__all__ = ["SCORES", "SELECTIVE_SCORES", "meta_feature_indices", "evaluation_rows",
           "score_columns", "selective_scores", "aggregate"]

SCORES = {"AUROC": metrics.auroc, "AUPR-In": metrics.aupr_in, "AUPR-Out": metrics.aupr_out,
          "FPR@95%TPR": metrics.fpr_at_tpr}
# "is this prediction correct?" as selective classification (issue 28)
SELECTIVE_SCORES = {"AURC": metrics.aurc, "AUGRC": metrics.augrc}


def selective_scores(correct, confidence):
    """{score: value} of :data:`SELECTIVE_SCORES` for the test predictions."""
    return {name: fn(correct, confidence) for name, fn in SELECTIVE_SCORES.items()}


def meta_feature_indices(names):
    """Indices of every feature in ``names`` but the softmax baseline: the gradient metrics
    and entropy the paper's meta classifiers read (Table 2)."""
    return [i for i, c in enumerate(names) if c != "softmax__max_prob"]


def evaluation_rows(n, known=None):
    """The rows of a concept's ``n`` images it is scored on: all but the ``known`` ones a
    meta classifier trained on."""
    return np.arange(n) if known is None else np.setdiff1d(np.arange(n), known)


def score_columns(positive, negatives):
    """{column: {score: value}}: the ``positive`` scores (label 1) against each entry of
    ``negatives`` (label 0), and against all of them pooled ("All")."""
    negatives = {**negatives, "All": np.concatenate(list(negatives.values()))}
    out = {}
    for column, negative in negatives.items():
        labels = np.r_[np.ones(len(positive)), np.zeros(len(negative))]
        scores = np.r_[positive, negative]
        out[column] = {name: fn(labels, scores) for name, fn in SCORES.items()}
    return out


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
