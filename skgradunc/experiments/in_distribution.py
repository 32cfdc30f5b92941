"""The detectors both reproductions add that need no labelled error (issue 27): fitted on
nothing (Energy, the maximum logit, ExGrad) or on the network's training images alone
(NAC-UE; GAIA's threshold), their outputs per image set, and each output's cost."""

import time
from functools import cache

import numpy as np
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from ..detectors import GAIADetector, KNNDetector, MahalanobisDetector, NACDetector
from ..transformer import GradientMetricTransformer

__all__ = ["ACTIVATION_OUTPUTS", "balanced_rows", "in_distribution_outputs", "timed_outputs",
           "in_distribution_scores"]

# the outputs in_distribution_outputs adds, recorded with the cached files
ACTIVATION_OUTPUTS = ("logits", "exgrad", "nac", "nac_auto", "gaia_a", "gaia_z")
# NAC-UE's fitting set: 1,000 class-balanced training images (the authors' valid_num)
NAC_IMAGES = 1000


def balanced_rows(y, n, seed):
    """``n`` rows of labels ``y``, as many of each class as it has up to an equal share
    (the authors' NAC fitting set)."""
    rng = np.random.RandomState(seed)
    classes = np.unique(y)
    return np.sort(np.concatenate([rng.permutation(np.flatnonzero(y == c))[:n // len(classes)]
                                   for c in classes]))


def timed_outputs(outputs, sets):
    """``{f"{set}__{output}": array}`` of every output function on every set, and
    ``cost__{output}``: its seconds per 1,000 images over all of them."""
    arrays, seconds = {}, dict.fromkeys(outputs, 0.0)
    for name, X in sets.items():
        for output, compute in outputs.items():
            start = time.perf_counter()
            arrays[f"{name}__{output}"] = compute(X)
            seconds[output] += time.perf_counter() - start
    images = sum(len(X) for X in sets.values())
    for output, value in seconds.items():
        arrays[f"cost__{output}"] = np.float64(1000 * value / images)
    return arrays


def in_distribution_outputs(net, train, layers, seed, *, batch_size, device):
    """{output: function of X} for :data:`ACTIVATION_OUTPUTS`, the detectors fitted on
    :func:`balanced_rows` of the training images ``train = (X, y)``: the logits (Energy's
    and the maximum logit's input), ExGrad's expected gradient norm, NAC-UE (the authors'
    alpha and ``alpha="auto"``), GAIA-A and GAIA-Z. ``layers``: ``{"nac": [...],
    "gaia_a": [...], "gaia_z": [...]}``, the network's modules."""
    common = {"batch_size": batch_size, "device": device}
    fitting = train[0][balanced_rows(train[1], NAC_IMAGES, seed)]
    exgrad = GradientMetricTransformer(net, target="expected", statistics=["l2"],
                                       groups="layer", softmax_features=False,
                                       **common).fit(fitting[:1])
    nac = NACDetector(net, layers=layers["nac"], **common).fit(fitting)
    nac_auto = NACDetector(net, layers=layers["nac"], alpha="auto", **common).fit(fitting)
    gaia_a = GAIADetector(net, layers=layers["gaia_a"], variant="A", **common).fit(fitting)
    gaia_z = GAIADetector(net, layers=layers["gaia_z"], variant="Z", **common).fit(fitting)
    return {"logits": lambda X: net.forward(X).double().numpy(),
            "exgrad": lambda X: exgrad.transform(X)[:, -1],   # network__l2
            "nac": nac.score_samples, "nac_auto": nac_auto.score_samples,
            "gaia_a": gaia_a.score_samples, "gaia_z": gaia_z.score_samples}


def in_distribution_scores(arrays, features, train_features, train_labels):
    """{row: (score of a set's name, the outputs whose cost it pays)} of the detectors that
    need no labelled error, from a run's cached ``arrays`` (``{set}__<output>`` of
    :data:`ACTIVATION_OUTPUTS`); ``features(set)``: that set's gradient metrics, the columns
    ``train_features`` (the training images') has. Mahalanobis (with the training images'
    classes ``train_labels``) and kNN are fitted here, on the standardised training
    features alone; higher scores mean more typical everywhere."""
    def cached(key, sign=1.0):
        return lambda s: sign * arrays[f"{s}__{key}"]

    def logits(s):
        return arrays[f"{s}__logits"]
    rows = {"ExGrad": (cached("exgrad", -1.0), ("exgrad",)),
            "Energy": (lambda s: np.logaddexp.reduce(logits(s), axis=1), ("logits",)),
            "Max. logit": (lambda s: logits(s).max(axis=1), ("logits",))}
    detectors = {"Mahalanobis, gradient metrics (training images)":
                 (MahalanobisDetector(), train_labels),
                 "kNN, gradient metrics (training images)": (KNNDetector(50), None)}
    for name, (detector, labels) in detectors.items():
        pipe = make_pipeline(StandardScaler(), detector).fit(train_features, labels)
        rows[name] = (cache(lambda s, pipe=pipe: pipe.score_samples(features(s))),
                      ("features",))
    for name, key in (("NAC-UE (training images)", "nac"),
                      ("NAC-UE, alpha auto (training images)", "nac_auto"),
                      ("GAIA-A", "gaia_a"), ("GAIA-Z", "gaia_z")):
        rows[name] = (cached(key), (key,))
    return rows
