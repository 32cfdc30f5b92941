"""Scores of a confidence for "prediction correct", selective classification, and
calibration.

Every function takes ``(y_correct, confidence)``: ``y_correct`` is 1 where the
network's prediction is correct and 0 where it is wrong or the input is out of
distribution (see :func:`skgradunc.correctness_target`); ``confidence`` is any
score that is *higher when the prediction is more likely correct* (e.g.
``MetaClassifier.predict_proba(X)[:, 1]`` or the max softmax probability).

Ranking (threshold-free):

* :func:`auroc`     - area under the ROC curve (direction-free up to 1 - x).
* :func:`aupr_in`   - average precision with "correct" as the positive class.
* :func:`aupr_out`  - average precision with "incorrect / OoD" as the positive class,
  scored by the negated confidence (Hendrycks & Gimpel 2017; the paper's AUPR-Out).
  Both AUPRs are scikit-learn's ``average_precision_score``: the step-wise sum
  sum_n (R_n - R_{n-1}) P_n over the thresholds, without the trapezoidal or
  interpolated precision some papers use (those read slightly higher).
* :func:`fpr_at_tpr` - false-positive rate at the threshold where the true-positive rate
  first reaches ``tpr`` (0.95: "FPR at 95 % TPR"), in either convention of the field:
  ``positive="correct"`` (:func:`fpr_at_95_tpr_in`: wrong / OoD inputs accepted while 95 %
  of the correct ones are; Hendrycks & Gimpel 2017, UQGAN) or ``positive="wrong"``
  (:func:`fpr_at_95_tpr_out`: correct predictions flagged while 95 % of the wrong / OoD
  ones are; OpenOOD, pytorch-ood). They differ; papers' numbers compare only within one.

Selective classification (answer where the confidence is high, abstain elsewhere):

* :func:`risk_coverage_curve`, :func:`aurc` (Geifman & El-Yaniv 2017), :func:`augrc`
  (Traub et al. 2024), :func:`risk_at_coverage`, :func:`coverage_at_risk`, and
  :class:`RiskCoverageDisplay` to draw the curve.

Calibration:

* :func:`expected_calibration_error` - of a probability of "correct" (a meta
  classifier's ``predict_proba``), in the bins of scikit-learn's ``calibration_curve``
  (whose curve draws the reliability diagram).

:func:`scorer` wraps them for ``scoring=`` in ``cross_val_score`` and ``GridSearchCV``.
"""

from ._calibration import expected_calibration_error
from ._ranking import aupr_in, aupr_out, auroc, fpr_at_95_tpr_in, fpr_at_95_tpr_out, fpr_at_tpr
from ._risk_coverage_display import RiskCoverageDisplay
from ._scorers import SCORERS, scorer
from ._selective import augrc, aurc, coverage_at_risk, risk_at_coverage, risk_coverage_curve

__all__ = ["auroc", "aupr_in", "aupr_out", "fpr_at_tpr", "fpr_at_95_tpr_in",
           "fpr_at_95_tpr_out", "expected_calibration_error", "risk_coverage_curve", "aurc",
           "augrc", "risk_at_coverage", "coverage_at_risk", "RiskCoverageDisplay", "scorer",
           "SCORERS"]
