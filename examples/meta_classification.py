"""
Meta classification: is the prediction correct?
===============================================

Meta classification on the embedded digits: is the CNN's prediction correct?

Protocol (fixed seeds):

1. train the paper's CNN on 1,000 digits;
2. on the 797 held-out digits, compute gradient metrics + softmax entropy and the meta target
   (1 = prediction correct, 0 = wrong);
3. score each meta classifier with 5-fold cross-validated (out-of-fold) predictions;
4. out of distribution: 200 uniform-noise test images against the correct digits, with the meta
   classifier trained (a) on digits only and (b) with 200 *other* noise images added as
   "known unknowns" (target 0).

Run: python examples/meta_classification.py
"""

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from sklearn.frozen import FrozenEstimator
from sklearn.metrics import PrecisionRecallDisplay, RocCurveDisplay
from sklearn.model_selection import StratifiedKFold, train_test_split

import skgradunc as sgu
from skgradunc.metrics import aupr_out, auroc

X, y = sgu.datasets.load_digits28(return_X_y=True)
X_train, X_held, y_train, y_held = train_test_split(
    X, y, train_size=1000, stratify=y, random_state=0)
net = sgu.CNNClassifier(lr=0.01, max_epochs=30, random_state=0, verbose=0).fit(X_train, y_train)

y_meta = sgu.correctness_target(net, X_held, y_held)
grad = sgu.GradientMetricTransformer(FrozenEstimator(net)).set_output(transform="pandas")
features = grad.fit_transform(X_held)
noise_test = grad.transform(sgu.datasets.make_noise(200, random_state=1))
noise_train = grad.transform(sgu.datasets.make_noise(200, random_state=2))  # known unknowns
gradient_and_entropy = [c for c in features.columns if c != "softmax__max_prob"]
print(f"CNN accuracy on the held-out digits: {y_meta.mean():.3f} "
      f"({(y_meta == 0).sum()} wrong of {len(y_meta)})")

folds = StratifiedKFold(5, shuffle=True, random_state=0)
correct = y_meta == 1
is_digit = np.r_[np.ones(correct.sum()), np.zeros(len(noise_test))]


out_of_fold = {}      # row -> out-of-fold P(correct) of the held-out digits, for the figure


def evaluate(meta, columns, known_unknowns, row):
    """Out-of-fold confidence on the digits; a fit on all digits scores the test noise."""
    extra_X = noise_train[columns] if known_unknowns else noise_train[columns].iloc[:0]
    extra_y = np.zeros(len(extra_X))
    confidence = np.zeros(len(features))
    for train, test in folds.split(features, y_meta):
        meta.fit(pd.concat([features[columns].iloc[train], extra_X]),
                 np.r_[y_meta[train], extra_y])
        confidence[test] = meta.predict_proba(features[columns].iloc[test])[:, 1]
    out_of_fold[row] = confidence
    meta.fit(pd.concat([features[columns], extra_X]), np.r_[y_meta, extra_y])
    on_noise = np.r_[confidence[correct], meta.predict_proba(noise_test[columns])[:, 1]]
    return {"correct vs wrong AUROC": auroc(y_meta, confidence),
            "correct vs wrong AUPR-Out": aupr_out(y_meta, confidence),
            "digits vs noise AUROC": auroc(is_digit, on_noise),
            "digits vs noise AUPR-Out": aupr_out(is_digit, on_noise)}


rows = {}
for known in (False, True):
    suffix = " + 200 noise" if known else ""
    for row, meta, columns in [
            ("softmax baseline" + suffix, sgu.SingleMetricClassifier("softmax__max_prob"),
             list(features.columns)),
            ("entropy" + suffix, sgu.SingleMetricClassifier("softmax__entropy"),
             list(features.columns)),
            *[(f"{method} (gradients + entropy){suffix}",
               sgu.MetaClassifier(method, random_state=0), gradient_and_entropy)
              for method in ("lasso", "nn")]]:
        rows[row] = evaluate(meta, columns, known, row)
table = pd.DataFrame(rows).T
pd.set_option("display.width", 120)
print(table.round(3).to_string())

# %%
# ROC and precision-recall curves of "correct vs wrong", out of fold, for the meta
# classifiers trained on digits only. The precision-recall curve takes the wrong
# predictions as the positive class (AUPR-Out): few and hard to find.
fig, (roc, pr) = plt.subplots(1, 2, figsize=(10, 4.2))
for row in ("softmax baseline", "entropy", "lasso (gradients + entropy)",
            "nn (gradients + entropy)"):
    RocCurveDisplay.from_predictions(y_meta, out_of_fold[row], name=row, ax=roc)
    PrecisionRecallDisplay.from_predictions(1 - y_meta, -out_of_fold[row], name=row, ax=pr)
roc.set_title("correct vs wrong: ROC")
pr.set_title("wrong predictions found: precision-recall")
fig.tight_layout()
plt.show()
