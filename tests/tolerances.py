"""How two float32 computations of the same features are compared.

Features computed with other chunk sizes, block sizes, engines or CPU kernels (AMD and
Intel pick different GEMM kernels) differ by ~1e-7 relative. They are compared with
rtol 1e-4 and, where a quantity may be near zero, an absolute floor scaled to it, because
a quantity near zero has no meaningful relative error:

* the norms and the standard deviation (sums of magnitudes: no cancellation): rtol only;
* a mean (zero by symmetry for some layers), a minimum or a maximum (which may lie near
  zero): also 1e-4 of the same row's group standard deviation, the scale of its elements
  (of the column's largest magnitude when the group's std is not computed);
* skewness, kurtosis and the softmax features, dimensionless and O(1): 1e-4 absolute.

Exact equality is asserted elsewhere, only where the computation is the same.
"""

import numpy as np

RTOL = 1e-4
DIMENSIONLESS = ("skew", "kurtosis", "entropy", "max_prob")
MAGNITUDES = ("l1", "l2", "std")


def assert_features_close(actual, desired, names, rtol=RTOL):
    """Columns of ``actual`` and ``desired`` (n, features) agree to float32 tolerance."""
    actual, desired, names = np.asarray(actual), np.asarray(desired), list(names)
    assert actual.shape == desired.shape == (len(desired), len(names))
    for j, name in enumerate(names):
        group, _, statistic = name.rpartition("__")
        if statistic in DIMENSIONLESS:
            floor = rtol
        elif statistic in MAGNITUDES:
            floor = 0.0
        elif f"{group}__std" in names:
            floor = rtol * np.abs(desired[:, names.index(f"{group}__std")])   # per row
        else:
            floor = rtol * np.abs(desired[:, j]).max()
        error = np.abs(actual[:, j] - desired[:, j])
        allowed = rtol * np.abs(desired[:, j]) + floor
        bad = ~(error <= allowed)   # NaN fails too
        row = int(np.argmax(bad))
        assert not bad.any(), (
            f"{name}: {bad.sum()} of {len(bad)} rows differ beyond float32 tolerance, e.g. "
            f"row {row}: {actual[row, j]!r} vs {desired[row, j]!r} (allowed "
            f"{np.broadcast_to(allowed, bad.shape)[row]:.3g})")
