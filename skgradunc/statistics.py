"""Per-sample statistics of gradient vectors and softmax outputs, on the device.

Conventions (those of numpy/scipy defaults, which the tests use as reference):

* ``l1`` = sum |g|, ``l2`` = sqrt(sum g^2), ``min``, ``max``, ``mean``.
* ``std``: population standard deviation (``ddof=0``, as ``numpy.std``).
* ``skew``: biased sample skewness m3 / m2^1.5 (``scipy.stats.skew(bias=True)``).
* ``kurtosis``: biased *excess* (Fisher) kurtosis m4 / m2^2 - 3
  (``scipy.stats.kurtosis(fisher=True, bias=True)``).
* skew and kurtosis of a constant vector (m2 = 0) are 0.

Moments are kept as exact summaries ``(n, mean, M2, M3, M4, l1, sumsq, min, max)``
with ``Mk = sum (g - mean)^k``; summaries of disjoint parts merge exactly
(Pebay 2008), so the whole network's statistics come from its layers' summaries
without concatenating the gradient.
"""

import torch

__all__ = ["STATISTICS", "SOFTMAX_FEATURES", "summarize", "merge", "finalize",
           "softmax_features"]

STATISTICS = ("l1", "l2", "min", "max", "mean", "std", "skew", "kurtosis")
SOFTMAX_FEATURES = ("entropy", "max_prob")


def summarize(g):
    """Moment summary of each row of ``g`` (shape (batch, n)); two-pass, stable."""
    n = g.shape[1]
    mean = g.mean(dim=1)
    centred = g - mean[:, None]
    c2 = centred * centred
    return {
        "n": n,
        "mean": mean,
        "M2": c2.sum(dim=1),
        "M3": (c2 * centred).sum(dim=1),
        "M4": (c2 * c2).sum(dim=1),
        "l1": g.abs().sum(dim=1),
        "sumsq": (g * g).sum(dim=1),
        "min": g.amin(dim=1),
        "max": g.amax(dim=1),
    }


def merge(a, b):
    """Exact summary of the concatenation of two parts (Pebay 2008, eq. 2.1-2.3)."""
    na, nb = a["n"], b["n"]
    n = na + nb
    delta = b["mean"] - a["mean"]
    d_n = delta / n
    M2 = a["M2"] + b["M2"] + delta * d_n * na * nb
    M3 = (a["M3"] + b["M3"] + delta * d_n * d_n * na * nb * (na - nb)
          + 3 * d_n * (na * b["M2"] - nb * a["M2"]))
    M4 = (a["M4"] + b["M4"]
          + delta * d_n * d_n * d_n * na * nb * (na * na - na * nb + nb * nb)
          + 6 * d_n * d_n * (na * na * b["M2"] + nb * nb * a["M2"])
          + 4 * d_n * (na * b["M3"] - nb * a["M3"]))
    return {
        "n": n,
        "mean": a["mean"] + d_n * nb,
        "M2": M2, "M3": M3, "M4": M4,
        "l1": a["l1"] + b["l1"],
        "sumsq": a["sumsq"] + b["sumsq"],
        "min": torch.minimum(a["min"], b["min"]),
        "max": torch.maximum(a["max"], b["max"]),
    }


def finalize(summary, statistics=STATISTICS):
    """The requested statistics from a summary, stacked as columns (batch, k)."""
    n = summary["n"]
    m2 = summary["M2"] / n
    flat = m2 <= 0
    safe_m2 = torch.where(flat, torch.ones_like(m2), m2)
    values = {
        "l1": lambda: summary["l1"],
        "l2": lambda: summary["sumsq"].sqrt(),
        "min": lambda: summary["min"],
        "max": lambda: summary["max"],
        "mean": lambda: summary["mean"],
        "std": lambda: m2.clamp(min=0).sqrt(),
        "skew": lambda: torch.where(flat, torch.zeros_like(m2),
                                    (summary["M3"] / n) / safe_m2 ** 1.5),
        "kurtosis": lambda: torch.where(flat, torch.zeros_like(m2),
                                        (summary["M4"] / n) / safe_m2 ** 2 - 3),
    }
    return torch.stack([values[name]() for name in statistics], dim=1)


def softmax_features(logits, features=SOFTMAX_FEATURES):
    """Entropy of the softmax normalised by log(q) (in [0, 1]) and max probability."""
    log_p = torch.log_softmax(logits, dim=1)
    p = log_p.exp()
    q = logits.shape[1]
    values = {
        # p * log p -> 0 as p -> 0; log_softmax keeps it finite
        "entropy": lambda: -(p * log_p).sum(dim=1) / torch.log(torch.tensor(
            float(q), dtype=logits.dtype, device=logits.device)),
        "max_prob": lambda: p.amax(dim=1),
    }
    return torch.stack([values[name]() for name in features], dim=1)
