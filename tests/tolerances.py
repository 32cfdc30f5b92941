"""How two float32 computations of the same features are compared.

Features computed with other chunk sizes, block sizes, engines or CPU kernels (AMD and
Intel pick different GEMM kernels) differ by ~1e-7 relative. They are compared with
rtol 1e-4 and an absolute floor scaled to the quantity, because a quantity near zero has
no meaningful relative error:

* norms, extremes and the standard deviation: 1e-4 of the column's largest magnitude;
* a mean (zero by symmetry for some layers): 1e-4 of its group's standard deviation;
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
            scale = 1.0
        elif statistic == "mean" and f"{group}__std" in names:
            scale = np.abs(desired[:, names.index(f"{group}__std")]).max()
        else:
            scale = np.abs(desired[:, j]).max()
        np.testing.assert_allclose(actual[:, j], desired[:, j], rtol=rtol,
                                   atol=rtol * scale, err_msg=name)
