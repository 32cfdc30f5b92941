"""UQGAN's MNIST 0-4 table from one run's cached outputs: every detector of the package
scored as the authors score theirs (``eval_ood_detection.py``), beside the published rows.

Per method, on the in-distribution test images: the accuracy of its network, the AUROC of
its confidence for success (correct) against failure (S/F), the same confidence as a
selective classifier (AURC, AUGRC), and the expected calibration error of its
probability (the network's maximum class probability; a meta classifier's P(correct);
none for GradNorm, whose score is not a probability). Against each unknown concept and
all of them pooled ("All"): AUROC, AUPR-In, AUPR-Out and FPR at 95 % TPR, with every
in-distribution test image as the positive class (right or wrong, as the authors).
Concepts some meta classifiers saw ("known unknowns") are scored on their other images,
for every method alike.
"""

from functools import cache

import numpy as np

from ... import metrics
from ...meta import MetaClassifier
from ...uqgan._losses import normalised_entropy
from ..in_distribution import in_distribution_scores
from ..scoring import (SCORES, SELECTIVE_SCORES, evaluation_rows, meta_feature_indices,
                       score_columns, selective_scores)
from ..temperature import temperature_scaling

__all__ = ["uqgan_run_tables", "PUBLISHED", "MAIN_TABLE", "OOD_TABLE", "TIME_TABLE",
           "COST_TABLE", "OOD_SCORES", "ID_SCORES", "in_distribution_methods"]

MAIN_TABLE, OOD_TABLE, TIME_TABLE = "MNIST 0-4", "Per unknown concept", "Training time"
COST_TABLE = "Cost"
ID_SCORES = ("Accuracy", "S/F AUROC", *SELECTIVE_SCORES, "ECE")
# AUROC, AUPR-In, AUPR-Out and FPR at 95 % TPR of the in-distribution images, as the
# paper's protocol scores "correct" against the unknowns
OOD_SCORES = SCORES
# the authors' README table for MNIST 0-4 (mean over their runs), in percent
PUBLISHED = {
    "Max. softmax": (99.87, 99.68, 0.11, 97.07, 69.00, 99.81, 9.71),
    "Entropy": (99.87, 99.66, 0.11, 97.13, 68.76, 99.81, 9.65),
    "One-vs-all": (99.84, 99.84, 0.12, 97.12, 66.68, 99.81, 9.45),
    "UQGAN": (99.74, 99.35, 0.15, 98.03, 80.05, 99.87, 8.73),
}
PUBLISHED_COLUMNS = ("Accuracy", "S/F AUROC", "ECE", *OOD_SCORES)


def _max(p):
    return p.max(axis=1)


def _negative_entropy(p):
    # the entropy divided by log K (a constant): the ranking of the entropy itself
    return -normalised_entropy(p)


def _one_minus_aleatoric(p):
    """1 - UQGAN's aleatoric uncertainty (the normalised entropy): its S/F confidence."""
    return 1 - normalised_entropy(p)


def _classifier_method(stage, confidence, ood=None, proba=None):
    """A classifier's outputs as a method: its S/F ``confidence`` of the class
    probabilities (``proba``, a function of the set's name; default: the stage's), its
    maximum class probability to calibrate, and its OoD score (``ood``; default: the
    confidence)."""
    proba = proba or (lambda s: stage[f"{s}__proba"])

    def scores(s):
        return confidence(proba(s))
    return {"stage": stage, "confidence": scores, "probability": lambda s: _max(proba(s)),
            "ood": ood or scores, "cost": ("proba",)}


def _meta_method(softmax, split, method, known_unknowns, random_state):
    columns = meta_feature_indices(softmax["columns"])
    correct = (softmax["validation__proba"].argmax(axis=1) == split["y_validation"])
    X, y = [softmax["validation__features"][:, columns]], [correct.astype(np.int64)]
    for concept in known_unknowns:
        X.append(softmax[f"{concept}__features"][split[f"known__{concept}"]][:, columns])
        y.append(np.zeros(len(X[-1]), dtype=np.int64))
    model = MetaClassifier(method, random_state=random_state)
    model.fit(np.concatenate(X), np.concatenate(y))
    p = cache(lambda s: model.predict_proba(softmax[f"{s}__features"][:, columns])[:, 1])
    return {"stage": softmax, "confidence": p, "probability": p, "ood": p,
            "cost": ("features",)}


def _methods(run, known_unknowns, random_state):
    """{row: method}; a method's functions take a set's name ("test", a concept)."""
    softmax, split = run["softmax"], run["split"]
    one_vs_all, uqgan = run["one_vs_all"], run["uqgan"]

    def gradnorm(s):
        return softmax[f"{s}__gradnorm"]
    scaled, _ = temperature_scaling(softmax, split["y_validation"])
    methods = {
        "Max. softmax": _classifier_method(softmax, _max),
        # issue 28: one temperature fitted on the validation images (scikit-learn's)
        "Max. softmax, temperature-scaled": {**_classifier_method(softmax, _max, proba=scaled),
                                             "cost": ("logits",)},
        "Entropy": _classifier_method(softmax, _negative_entropy),
        # UQGAN's reading (Sec. 3): S/F by the aleatoric, OoD by the epistemic uncertainty
        "One-vs-all": _classifier_method(one_vs_all, _one_minus_aleatoric,
                                         lambda s: one_vs_all[f"{s}__p_in"]),
        "UQGAN": _classifier_method(uqgan, _one_minus_aleatoric,
                                    lambda s: uqgan[f"{s}__p_in"]),
        "GradNorm": {"stage": softmax, "confidence": gradnorm, "probability": None,
                     "ood": gradnorm, "cost": ("gradnorm",)},
    }
    for name, method in (("LASSO", "lasso"), ("NN", "nn")):
        methods[f"{name}, gradient metrics"] = _meta_method(softmax, split, method, (),
                                                            random_state)
        methods[f"{name}, gradient metrics + known unknowns"] = _meta_method(
            softmax, split, method, known_unknowns, random_state)
    methods.update(in_distribution_methods(softmax))   # issue 27's rows
    for method in methods.values():   # one-vs-all and UQGAN: their outputs are not timed
        if method["stage"] is not softmax:
            method["cost"] = ()
    return methods


def in_distribution_methods(softmax):
    """The rows that need no labelled error (:func:`~skgradunc.experiments.in_distribution.
    in_distribution_scores`): fitted on nothing (ExGrad, Energy, the maximum logit), or on
    the softmax network's training images alone (Mahalanobis and kNN on their gradient
    metrics, fitted here; NAC-UE and GAIA, scored in the softmax stage). Never a wrong
    prediction or an unknown."""
    columns = meta_feature_indices(softmax["columns"])
    rows = in_distribution_scores(
        softmax, lambda s: softmax[f"{s}__features"][:, columns],
        softmax["train__features"][:, columns], softmax["train__labels"])
    return {name: {"stage": softmax, "confidence": score, "probability": None, "ood": score,
                   "cost": cost} for name, (score, cost) in rows.items()}


def _ood_scores(score, run, concepts):
    """Every in-distribution test image against each concept's evaluation rows."""
    rows = {c: evaluation_rows(len(run["softmax"][f"{c}__proba"]),
                               run["split"].get(f"known__{c}")) for c in concepts}
    return score_columns(score("test"), {c: score(c)[rows[c]] for c in concepts})


def uqgan_run_tables(run, concepts, known_unknowns, random_state=0):
    """{table: {row: {column: {score: value}}}} of one run (values as fractions).

    ``run`` is :func:`~skgradunc.experiments.uqgan.runs.compute_uqgan_run`'s output;
    ``random_state`` seeds the meta classifiers.
    """
    tables = {MAIN_TABLE: {}, OOD_TABLE: {}, TIME_TABLE: {}, COST_TABLE: {}}
    y_test = run["split"]["y_test"]
    for name, method in _methods(run, known_unknowns, random_state).items():
        stage = method["stage"]
        correct = (stage["test__proba"].argmax(axis=1) == y_test).astype(np.int64)
        confidence = method["confidence"]("test")
        in_distribution = {"Accuracy": float(correct.mean()),
                           "S/F AUROC": metrics.auroc(correct, confidence),
                           **selective_scores(correct, confidence)}
        if method["probability"] is not None:
            in_distribution["ECE"] = metrics.expected_calibration_error(
                correct, method["probability"]("test"))
        ood = _ood_scores(method["ood"], run, concepts)
        tables[MAIN_TABLE][name] = {"test": in_distribution, "All": ood["All"]}
        tables[OOD_TABLE][name] = ood
        if method["cost"] and all(f"cost__{key}" in stage for key in method["cost"]):
            tables[COST_TABLE][name] = {"cost": {"s / 1000 images": float(sum(
                stage[f"cost__{key}"] for key in method["cost"]))}}
    for stage in ("softmax", "one_vs_all", "uqgan"):
        tables[TIME_TABLE][stage.replace("_", "-")] = {
            "seconds": {"seconds": float(run[stage]["seconds"])}}
    return tables
