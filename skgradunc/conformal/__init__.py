"""From scores to decisions with guarantees: a reject rule at a chosen in-distribution
rate, conformal p-values, and the Benjamini-Hochberg procedure over a batch.

* :class:`ConformalDetector` - any fitted confidence (a meta classifier's P(correct), an
  outlier detector, the softmax maximum, GradNorm) as a +1 / -1 rule accepting a chosen
  fraction of in-distribution inputs, calibrated on held-out in-distribution data;
* :func:`conformal_pvalues` - marginally valid p-values of test inputs against
  in-distribution calibration scores (Bates et al. 2023);
* :func:`benjamini_hochberg` - the inputs to flag so that the false discovery rate stays
  at most ``alpha``.
"""

from ._detector import ConformalDetector
from ._pvalues import benjamini_hochberg, conformal_pvalues

__all__ = ["ConformalDetector", "conformal_pvalues", "benjamini_hochberg"]
