"""
From scores to decisions: thresholds, conformal p-values, risk-coverage
=======================================================================

A score is not yet an answer. On the embedded digits and the paper's CNN:

1. a **meta classifier** (LASSO on gradient metrics) gives P(correct); scikit-learn's
   ``FixedThresholdClassifier`` turns it into "trust / do not trust", and the
   **risk-coverage curve** shows what each threshold costs (AURC, AUGRC);
2. an **in-distribution-only detector** (Mahalanobis on gradient metrics, fitted on the
   training digits) becomes a reject rule at **95 % TPR** with
   :class:`~skgradunc.conformal.ConformalDetector`, calibrated on held-out digits;
3. its **conformal p-values** with **Benjamini-Hochberg at alpha = 0.1** flag the
   unknowns in a mixed batch of digits, uniform noise and letters, with the false
   discovery rate controlled; the realised FDR and power are printed;
4. **temperature scaling** (scikit-learn's ``CalibratedClassifierCV``) and the softmax
   maximum's ECE before and after.

Run: python examples/decisions.py
"""

import matplotlib.pyplot as plt
import numpy as np
from sklearn.calibration import CalibratedClassifierCV
from sklearn.frozen import FrozenEstimator
from sklearn.model_selection import FixedThresholdClassifier, train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import skgradunc as sgu
from skgradunc.conformal import ConformalDetector, benjamini_hochberg
from skgradunc.detectors import MahalanobisDetector
from skgradunc.metrics import RiskCoverageDisplay

X, y = sgu.datasets.load_digits28(return_X_y=True)
X_train, X_rest, y_train, y_rest = train_test_split(X, y, train_size=0.5, stratify=y,
                                                    random_state=0)
# validation: the meta classifier's training set; calibration: held out for thresholds
X_val, X_rest, y_val, y_rest = train_test_split(X_rest, y_rest, train_size=0.3, stratify=y_rest,
                                                random_state=0)
X_cal, X_test, y_cal, y_test = train_test_split(X_rest, y_rest, train_size=0.4,
                                                stratify=y_rest, random_state=0)
net = sgu.CNNClassifier(lr=0.01, max_epochs=30, random_state=0, verbose=0).fit(X_train, y_train)
frozen = FrozenEstimator(net)
print(f"{len(X_train)} training, {len(X_val)} validation, {len(X_cal)} calibration, "
      f"{len(X_test)} test digits; test accuracy {net.score(X_test, y_test):.3f}")

# %%
# 1. Is this prediction correct? A meta classifier, a threshold, the risk-coverage curve
# --------------------------------------------------------------------------------------
meta = make_pipeline(sgu.GradientMetricTransformer(frozen, device="cpu"),
                     sgu.MetaClassifier("lasso", random_state=0))
meta.fit(X_val, sgu.correctness_target(frozen, X_val, y_val))
correct = sgu.correctness_target(frozen, X_test, y_test)
p_correct = meta.predict_proba(X_test)[:, 1]
trust = FixedThresholdClassifier(FrozenEstimator(meta), threshold=0.9,
                                 response_method="predict_proba").fit(X_val[:2], [0, 1])
accepted = trust.predict(X_test) == 1
print(f"P(correct) >= 0.9: {accepted.mean():.1%} of the test digits answered, "
      f"{1 - correct[accepted].mean():.2%} of them wrong (all: {1 - correct.mean():.2%})")

softmax_max = net.predict_proba(X_test).max(axis=1)
for name, confidence in (("LASSO meta classifier", p_correct), ("softmax maximum", softmax_max)):
    print(f"{name}: AURC {sgu.metrics.aurc(correct, confidence):.4f}, "
          f"AUGRC {sgu.metrics.augrc(correct, confidence):.4f}, risk at 80 % coverage "
          f"{sgu.metrics.risk_at_coverage(correct, confidence, 0.8):.3%}")
fig, ax = plt.subplots(figsize=(6, 4))
RiskCoverageDisplay.from_predictions(correct, p_correct, name="LASSO meta classifier", ax=ax)
RiskCoverageDisplay.from_predictions(correct, softmax_max, name="softmax maximum", ax=ax)
ax.set_title("Risk-coverage on the test digits")
fig.tight_layout()

# %%
# 2. A reject rule at 95 % TPR, fitted on in-distribution data alone
# ------------------------------------------------------------------
# Mahalanobis on the training digits' gradient metrics scores how typical an input is;
# ConformalDetector sets its threshold on the held-out calibration digits so that 95 % of
# in-distribution inputs pass (at least 95 %, by the split-conformal argument).
typical = make_pipeline(sgu.GradientMetricTransformer(frozen, device="cpu"), StandardScaler(),
                        MahalanobisDetector()).fit(X_train, y_train)
rule = ConformalDetector(FrozenEstimator(typical), tpr=0.95).fit(X_cal)
shape = X.shape[1:]
noise = sgu.datasets.make_noise(60, kind="uniform", shape=shape, random_state=5)
letters = sgu.datasets.load_letters28(3, random_state=6, return_X_y=True)[0][:60]
print(f"accepted: {np.mean(rule.predict(X_test) == 1):.1%} of the test digits, "
      f"{np.mean(rule.predict(noise) == 1):.1%} of the noise, "
      f"{np.mean(rule.predict(letters) == 1):.1%} of the letters")

# %%
# 3. Conformal p-values and Benjamini-Hochberg over a mixed batch
# ---------------------------------------------------------------
batch = np.concatenate([X_test[:240], noise, letters])
is_unknown = np.r_[np.zeros(240, bool), np.ones(len(noise) + len(letters), bool)]
pvalues = rule.pvalues(batch)
flagged = benjamini_hochberg(pvalues, alpha=0.1)
fdr = (flagged & ~is_unknown).sum() / max(flagged.sum(), 1)
print(f"BH at alpha = 0.1 flags {flagged.sum()} of {len(batch)}: realised FDR {fdr:.3f}, "
      f"power {flagged[is_unknown].mean():.3f} ({is_unknown.sum()} unknowns in the batch)")

# %%
# 4. Temperature scaling: the softmax maximum's calibration before and after
# --------------------------------------------------------------------------
scaled = CalibratedClassifierCV(frozen, method="temperature").fit(X_cal, y_cal)
for name, proba in (("before", net.predict_proba(X_test)),
                    ("after", scaled.predict_proba(X_test))):
    ece = sgu.metrics.expected_calibration_error(correct, proba.max(axis=1))
    print(f"ECE of the softmax maximum {name} temperature scaling: {ece:.4f}")
