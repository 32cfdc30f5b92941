"""Per-sample statistics of gradient vectors and softmax outputs, on the device.

Conventions (those of numpy/scipy defaults, which the tests use as reference):

* ``l1`` = sum |g|, ``l2`` = sqrt(sum g^2), ``min``, ``max``, ``mean``.
* ``std``: population standard deviation (``ddof=0``, as ``numpy.std``).
* ``skew``: biased sample skewness m3 / m2^1.5 (``scipy.stats.skew(bias=True)``).
* ``kurtosis``: biased *excess* (Fisher) kurtosis m4 / m2^2 - 3
  (``scipy.stats.kurtosis(fisher=True, bias=True)``).
* skew and kurtosis of a constant vector (m2 = 0) are 0.

A *summary* of each row of a gradient block is a float64 tensor (..., batch, 9)
with columns ``n, mean, M2, M3, M4, l1, sumsq, min, max`` (``Mk = sum (g -
mean)^k``). Summaries of disjoint parts combine exactly, in a few vectorised
operations whatever the number of parts, so layer and whole-network statistics
come from per-parameter summaries without concatenating the gradient.
"""

import math

import torch

__all__ = ["STATISTICS", "SOFTMAX_FEATURES", "summarize", "summarize_outer",
           "summarize_low_rank", "zero_summary", "with_zeros",
           "combine", "merge", "finalize", "softmax_features"]

STATISTICS = ("l1", "l2", "min", "max", "mean", "std", "skew", "kurtosis")
SOFTMAX_FEATURES = ("entropy", "max_prob")
N, MEAN, M2, M3, M4, L1, SUMSQ, MIN, MAX = range(9)


def _stack(n, mean, m2, m3, m4, l1, sumsq, minimum, maximum):
    columns = [mean, m2, m3, m4, l1, sumsq, minimum, maximum]
    summary = torch.stack(columns, dim=-1).to(torch.float64)
    count = torch.full_like(summary[..., :1], float(n))
    return torch.cat([count, summary], dim=-1)


def summarize(g):
    """Summary (batch, 9) of each row of ``g`` (batch, n); two-pass, stable.

    The element-wise passes run in g's dtype (float32 sums err by about eps * l1,
    far below the spread); the summary itself is float64. Written for few passes
    over memory: fused dot products for the third and fourth moments, one
    temporary reused for |g|, separate amin/amax (aminmax measured ~10x slower on
    CPU).
    """
    n = g.shape[1]
    mean = g.sum(dim=1) / n
    centred = g - mean[:, None]
    c2 = centred * centred
    m2 = c2.sum(dim=1).to(torch.float64)
    m3 = torch.linalg.vecdot(c2, centred)
    m4 = torch.linalg.vecdot(c2, c2)
    l1 = torch.abs(g, out=centred).sum(dim=1)
    mean64 = mean.to(torch.float64)
    return _stack(n, mean64, m2, m3, m4, l1, m2 + n * mean64 * mean64,  # sum g^2 = M2 + n mean^2
                  g.amin(dim=1), g.amax(dim=1))


def _from_power_sums(n, s1, s2, s3, s4, l1, minimum, maximum):
    """Summary from float64 power sums s_k = sum g^k (exact algebra; rounding of the
    central moments ~ eps64 (mean/std)^4)."""
    mean = s1 / n
    return _stack(n, mean, (s2 - n * mean * mean).clamp(min=0),
                  s3 - 3 * mean * s2 + 2 * n * mean ** 3,
                  s4 - 4 * mean * s3 + 6 * mean * mean * s2 - 3 * n * mean ** 4,
                  l1, s2, minimum, maximum)


def summarize_outer(u, v):
    """Summary of each row's outer product u_i v_j (u (batch, a), v (batch, b)),
    never forming it: power sums factorise, sum (u_i v_j)^k = sum u^k * sum v^k,
    and the extremes are products of the factors' extremes.
    """
    u, v = u.to(torch.float64), v.to(torch.float64)
    u2, v2 = u * u, v * v
    corners = (torch.stack([u.amin(1), u.amax(1)], 1)[:, :, None]
               * torch.stack([v.amin(1), v.amax(1)], 1)[:, None, :]).flatten(1)
    return _from_power_sums(
        u.shape[1] * v.shape[1], u.sum(1) * v.sum(1), u2.sum(1) * v2.sum(1),
        (u2 * u).sum(1) * (v2 * v).sum(1), (u2 * u2).sum(1) * (v2 * v2).sum(1),
        u.abs().sum(1) * v.abs().sum(1), corners.amin(1), corners.amax(1))


def _pairs(x):
    """(batch, r*r, a): the products x[s] * x[t] of every pair of rows."""
    return (x[:, :, None, :] * x[:, None, :, :]).flatten(1, 2)


def summarize_low_rank(u, v, product):
    """Summary of each row's sum of r outer products, G = sum_s u[s] (x) v[s]
    (u (batch, r, a), v (batch, r, b); a convolution with r output positions).

    The power sums come from r x r contractions of the factors in float64, e.g.
    sum G^2 = <U U^T, V V^T> and sum G^4 = <P_u P_u^T, P_v P_v^T> with P the
    pairwise row products, instead of element-wise passes over G; only sum |G|,
    min and max read ``product`` (batch, a*b), G itself (in any element order).
    """
    u64, v64 = u.to(torch.float64), v.to(torch.float64)
    pu, pv = _pairs(u64), _pairs(v64)
    gram_u, gram_v = torch.bmm(u64, u64.transpose(1, 2)), torch.bmm(v64, v64.transpose(1, 2))
    s3 = (torch.bmm(pu, u64.transpose(1, 2)) * torch.bmm(pv, v64.transpose(1, 2))).sum((1, 2))
    s4 = (torch.bmm(pu, pu.transpose(1, 2)) * torch.bmm(pv, pv.transpose(1, 2))).sum((1, 2))
    return _from_power_sums(
        u.shape[2] * v.shape[2], (u64.sum(2) * v64.sum(2)).sum(1),
        (gram_u * gram_v).sum((1, 2)), s3, s4,
        product.abs().sum(1), product.amin(1), product.amax(1))


def zero_summary(batch, count, device=None):
    """Summary (batch, 9) of ``count`` zeros per row (a weight with no gradient)."""
    summary = torch.zeros(batch, 9, dtype=torch.float64, device=device)
    summary[:, N] = count
    return summary


def with_zeros(summary, count):
    """Summary (batch, 9) of each row together with ``count`` more zeros (an embedding's
    untouched rows), exact."""
    if count == 0:
        return summary
    zeros = torch.zeros_like(summary)
    zeros[..., N] = count
    return merge(summary, zeros)


def combine(parts, membership=None):
    """Exact summaries of unions of disjoint parts.

    Parameters
    ----------
    parts : tensor (parts, ..., 9)
    membership : bool tensor (groups, parts), optional
        Row g selects the parts of group g. Without it, all parts form one group
        and the result has no group axis.

    About a group's mean m, a part with mean m_p and d = m_p - m contributes
    sum (x - m)^k = sum_j C(k, j) M_j d^(k-j) (M_0 = n_p, M_1 = 0). All groups
    are computed together in a fixed number of vectorised operations.
    """
    single = membership is None
    if single:
        membership = torch.ones(1, parts.shape[0], dtype=torch.bool, device=parts.device)
    extra = (1,) * (parts.dim() - 2)
    w = membership.to(parts.dtype).reshape(*membership.shape, *extra)   # (G, P, 1...)
    inside = membership.reshape(*membership.shape, *extra)
    p = parts[None]                                                    # (1, P, ..., 9)
    n_p, mean_p = p[..., N], p[..., MEAN]
    m2_p, m3_p, m4_p = p[..., M2], p[..., M3], p[..., M4]
    n = (w * n_p).sum(1)
    mean = (w * n_p * mean_p).sum(1) / n
    d = mean_p - mean[:, None]
    d2 = d * d
    infinity = parts.new_full((), float("inf"))  # a fill on the device, not a host copy
    result = torch.stack([
        n, mean,
        (w * (m2_p + n_p * d2)).sum(1),
        (w * (m3_p + 3 * d * m2_p + n_p * d2 * d)).sum(1),
        (w * (m4_p + 4 * d * m3_p + 6 * d2 * m2_p + n_p * d2 * d2)).sum(1),
        (w * p[..., L1]).sum(1), (w * p[..., SUMSQ]).sum(1),
        torch.where(inside, p[..., MIN], infinity).amin(1),
        torch.where(inside, p[..., MAX], -infinity).amax(1)], dim=-1)
    return result[0] if single else result


def merge(a, b):
    """Exact summary of two disjoint parts."""
    return combine(torch.stack([a, b]))


def finalize(summary, statistics=STATISTICS):
    """The requested statistics of summaries (..., 9) as (..., len(statistics))."""
    n = summary[..., N]
    m2 = summary[..., M2] / n
    flat = m2 <= 0
    safe_m2 = torch.where(flat, torch.ones_like(m2), m2)
    zero = torch.zeros_like(m2)
    values = {
        "l1": lambda: summary[..., L1],
        "l2": lambda: summary[..., SUMSQ].sqrt(),
        "min": lambda: summary[..., MIN],
        "max": lambda: summary[..., MAX],
        "mean": lambda: summary[..., MEAN],
        "std": lambda: m2.clamp(min=0).sqrt(),
        "skew": lambda: torch.where(flat, zero, summary[..., M3] / n / safe_m2 ** 1.5),
        "kurtosis": lambda: torch.where(flat, zero, summary[..., M4] / n / safe_m2 ** 2 - 3),
    }
    return torch.stack([values[name]() for name in statistics], dim=-1)


def softmax_features(logits, features=SOFTMAX_FEATURES):
    """Entropy of the softmax normalised by log(q) (in [0, 1]) and max probability."""
    log_p = torch.log_softmax(logits, dim=1)
    p = log_p.exp()
    q = logits.shape[1]
    values = {
        # p * log p -> 0 as p -> 0; log_softmax keeps it finite
        "entropy": lambda: -(p * log_p).sum(dim=1) / math.log(q),
        "max_prob": lambda: p.amax(dim=1),
    }
    return torch.stack([values[name]() for name in features], dim=1)
