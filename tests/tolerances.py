"""How two float32 computations of the same features are compared.

Features computed with other chunk sizes, block sizes, engines or CPU kernels (AMD and
Intel pick different GEMM kernels) differ by ~1e-7 relative for most samples. They are
compared with rtol 1e-4 and an absolute floor scaled to the quantity, because a quantity
near zero has no meaningful relative error:

* any statistic of the gradient: also 1e-4 of the column's median magnitude. A confident
  sample's gradient scales with 1 - p, computed with cancellation, so its relative error
  grows to ~eps / (1 - p) (1.4e-4 measured at p ~ 0.999 between chunks of 1 and 7); its
  values are then far below the median, where this floor holds;
* a mean (zero by symmetry for some layers), a minimum or a maximum (which may lie near
  zero): also 1e-4 of the same row's group standard deviation, the scale of its elements;
* skewness, kurtosis and the softmax features, dimensionless and O(1): 1e-4 absolute.

Exact equality is asserted elsewhere, only where the computation is the same.
"""

import numpy as np

RTOL = 1e-4
DIMENSIONLESS = ("skew", "kurtosis", "entropy", "max_prob")


def assert_features_close(actual, desired, names, rtol=RTOL):
    """Columns of ``actual`` and ``desired`` (n, features) agree to float32 tolerance."""
    actual, desired, names = np.asarray(actual), np.asarray(desired), list(names)
    assert actual.shape == desired.shape == (len(desired), len(names))
    for j, name in enumerate(names):
        group, _, statistic = name.rpartition("__")
        if statistic in DIMENSIONLESS:
            floor = rtol
        else:
            floor = rtol * np.median(np.abs(desired[:, j]))
            if statistic in ("mean", "min", "max") and f"{group}__std" in names:
                floor = floor + rtol * np.abs(desired[:, names.index(f"{group}__std")])
        error = np.abs(actual[:, j] - desired[:, j])
        allowed = rtol * np.abs(desired[:, j]) + floor
        bad = ~(error <= allowed)   # NaN fails too
        row = int(np.argmax(bad))
        assert not bad.any(), (
            f"{name}: {bad.sum()} of {len(bad)} rows differ beyond float32 tolerance, e.g. "
            f"row {row}: {actual[row, j]!r} vs {desired[row, j]!r} (allowed "
            f"{np.broadcast_to(allowed, bad.shape)[row]:.3g})")
