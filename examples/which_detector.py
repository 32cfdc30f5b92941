"""
Which detector? In-distribution-only scorers beside the others
==============================================================

The paper's CNN on the embedded digits, and every kind of detector the package has for "is
this input out of distribution?", each fitted only on what its row names:

* **nothing**: the maximum softmax probability, GradNorm's score;
* **in-distribution training images only**: the class-conditional Mahalanobis distance and
  the k-nearest-neighbour distance on gradient metrics (``skgradunc.detectors``),
  scikit-learn's ``IsolationForest`` composed the same way, and on activation gradients
  NAC-UE's coverage (the map before the head) and GAIA-A (the convolutions; it learns
  nothing but its threshold);
* **errors and known unknowns**: the LASSO meta classifier, trained on a validation part and
  200 uniform-noise images.

Scored on the test digits against letters, natural-image patches and normal noise (unknowns
none of them saw), as AUROC and FPR at 95 % TPR, with each detector's cost per 1,000 images.

Run: python examples/which_detector.py
"""

import time

import numpy as np
import pandas as pd
from sklearn.ensemble import IsolationForest
from sklearn.frozen import FrozenEstimator
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import skgradunc as sgu
from skgradunc.detectors import (GAIADetector, KNNDetector, MahalanobisDetector, NACDetector,
                                 gradnorm_score)

X, y = sgu.datasets.load_digits28(return_X_y=True)
X_train, X_rest, y_train, y_rest = train_test_split(X, y, test_size=0.4, stratify=y,
                                                    random_state=0)
X_val, X_test, y_val, y_test = train_test_split(X_rest, y_rest, test_size=0.5,
                                                stratify=y_rest, random_state=0)
net = sgu.CNNClassifier(lr=0.01, max_epochs=30, random_state=0, verbose=0).fit(X_train, y_train)
frozen = FrozenEstimator(net)
shape = X.shape[1:]
unknowns = np.concatenate([
    sgu.datasets.load_letters28(40, random_state=1, return_X_y=True)[0][:300],
    sgu.datasets.load_natural28(300, random_state=2),
    sgu.datasets.make_noise(300, kind="normal", shape=shape, random_state=4)])
X_eval = np.concatenate([X_test, unknowns])
is_digit = np.r_[np.ones(len(X_test)), np.zeros(len(unknowns))]


def gradient_metrics():
    return sgu.GradientMetricTransformer(frozen, device="cpu")


# fitted on nothing
def max_softmax():
    return lambda X: net.predict_proba(X).max(axis=1)


def gradnorm():
    return lambda X: gradnorm_score(frozen, X, device="cpu")


# fitted on the in-distribution training images alone
def fitted_on_training_images(detector, labels=False):
    pipe = make_pipeline(gradient_metrics(), StandardScaler(), detector)
    pipe.fit(X_train, y_train if labels else None)
    return pipe.score_samples


# on activation gradients, fitted on the training images (PaperCNN's last convolution is the
# map before the dense head; its shared activation and dropout modules run twice a forward)
def nac():
    return NACDetector(frozen, layers=["conv3"], alpha="auto", device="cpu").fit(
        X_train).score_samples


def gaia():
    return GAIADetector(frozen, layers=["conv1", "conv2", "conv3"], device="cpu").fit(
        X_train).score_samples


# fitted on errors and known unknowns
def lasso_with_known_unknowns():
    noise = sgu.datasets.make_noise(200, kind="uniform", shape=shape, random_state=3)
    X_known, y_known = sgu.append_out_of_distribution(X_val, y_val, noise)
    pipe = make_pipeline(gradient_metrics(), sgu.MetaClassifier("lasso", random_state=0))
    pipe.fit(X_known, sgu.correctness_target(frozen, X_known, y_known))
    return lambda X: pipe.predict_proba(X)[:, 1]


detectors = {
    ("Maximum softmax", "nothing"): max_softmax,
    ("GradNorm", "nothing"): gradnorm,
    ("Mahalanobis on gradient metrics", "training images"):
        lambda: fitted_on_training_images(MahalanobisDetector(), labels=True),
    ("kNN on gradient metrics", "training images"):
        lambda: fitted_on_training_images(KNNDetector(n_neighbors=20)),
    ("IsolationForest on gradient metrics", "training images"):
        lambda: fitted_on_training_images(IsolationForest(random_state=0)),
    ("NAC-UE, alpha auto", "training images"): nac,
    ("GAIA-A", "training images"): gaia,
    ("LASSO meta classifier", "errors + known unknowns"): lasso_with_known_unknowns,
}
rows = []
for (name, data), make in detectors.items():
    score = make()
    start = time.perf_counter()
    confidence = score(X_eval)
    seconds = time.perf_counter() - start
    rows.append({"detector": name, "fitted on": data,
                 "AUROC": 100 * sgu.metrics.auroc(is_digit, confidence),
                 "FPR@95%TPR": 100 * sgu.metrics.fpr_at_95_tpr_in(is_digit, confidence),
                 "s / 1000 images": 1000 * seconds / len(X_eval)})
table = pd.DataFrame(rows)
print(f"test accuracy {net.score(X_test, y_test):.3f}; {len(X_test)} test digits against "
      f"{len(unknowns)} letters, natural-image patches and normal noise")
print(table.round(2).to_string(index=False))
