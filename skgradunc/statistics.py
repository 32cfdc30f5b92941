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

__all__ = ["STATISTICS", "SOFTMAX_FEATURES", "needed_columns", "summarize", "Segments",
           "summarize_segments",
           "summarize_outer",
           "summarize_low_rank", "zero_summary", "with_zeros",
           "combine", "merge", "finalize", "softmax_features"]

STATISTICS = ("l1", "l2", "min", "max", "mean", "std", "skew", "kurtosis")
SOFTMAX_FEATURES = ("entropy", "max_prob")
N, MEAN, M2, M3, M4, L1, SUMSQ, MIN, MAX = range(9)


# the summary columns each statistic reads, and those that combining parts needs beside
# them (a group's M2 needs the parts' means, M3 their M2, M4 their M3)
_READS = {"l1": {L1}, "l2": {SUMSQ}, "min": {MIN}, "max": {MAX}, "mean": {MEAN},
          "std": {M2}, "skew": {M2, M3}, "kurtosis": {M2, M4}}
_NEEDS = {M2: {MEAN}, M3: {M2, MEAN}, M4: {M3, M2, MEAN}}
ALL_COLUMNS = frozenset(range(1, 9))


def needed_columns(statistics=STATISTICS):
    """The summary columns the given statistics read, with what combining parts needs:
    the columns a summary must hold (the others may be left 0: they are never read)."""
    needed = set()
    for name in statistics:
        needed |= _READS[name]
    for column in (M4, M3, M2):
        if column in needed:
            needed |= _NEEDS[column]
    return frozenset(needed)


def _stack(n, columns, like):
    """(batch, 9) float64 summary from {column: (batch,) tensor}; absent columns 0."""
    summary = torch.zeros(like.shape[0], 9, dtype=torch.float64, device=like.device)
    summary[:, N] = float(n)
    if columns:
        index = sorted(columns)
        values = [columns[c] for c in index]
        dtype = torch.promote_types(values[0].dtype, torch.float64)
        summary[:, index] = torch.stack([v.to(dtype) if v.dtype != dtype else v
                                         for v in values], dim=1)
    return summary


def summarize(g, needed=None):
    """Summary (batch, 9) of each row of ``g`` (batch, n); two-pass, stable.

    ``needed`` (:func:`needed_columns`; None: all) names the columns to compute; the
    others are left 0. The element-wise passes run in g's dtype (float32 sums err by
    about eps * l1, far below the spread); the summary itself is float64. Written for
    few passes over memory: fused dot products for the third and fourth moments, one
    temporary reused for |g|, separate amin/amax (aminmax measured ~10x slower on CPU).
    """
    needed = ALL_COLUMNS if needed is None else needed
    n = g.shape[1]
    columns = {}
    if needed & {MEAN, M2, M3, M4}:
        mean = g.sum(dim=1) / n
        columns[MEAN] = mean.to(torch.float64)
    if needed & {M2, M3, M4}:
        centred = g - mean[:, None]
        c2 = centred * centred
        columns[M2] = c2.sum(dim=1).to(torch.float64)
        if M3 in needed:
            columns[M3] = torch.linalg.vecdot(c2, centred)
        if M4 in needed:
            columns[M4] = torch.linalg.vecdot(c2, c2)
        if SUMSQ in needed:   # sum g^2 = M2 + n mean^2
            columns[SUMSQ] = columns[M2] + n * columns[MEAN] * columns[MEAN]
        if L1 in needed:
            columns[L1] = torch.abs(g, out=centred).sum(dim=1)
    else:
        if SUMSQ in needed:
            columns[SUMSQ] = torch.linalg.vecdot(g, g)
        if L1 in needed:
            columns[L1] = g.abs().sum(dim=1)
    if MIN in needed:
        columns[MIN] = g.amin(dim=1)
    if MAX in needed:
        columns[MAX] = g.amax(dim=1)
    return _stack(n, columns, g)


class Segments:
    """Consecutive parts of a row, of the given ``lengths``: what
    :func:`summarize_segments` reduces (their index made once)."""

    def __init__(self, lengths, device=None):
        self.lengths = torch.as_tensor(list(lengths), device=device)
        self.part = torch.repeat_interleave(torch.arange(len(self.lengths), device=device),
                                            self.lengths)
        self.counts = self.lengths.to(torch.float64)

    def reduce(self, values, how="sum"):
        """(batch, parts) reductions of (batch, total) ``values``."""
        return torch.segment_reduce(values, how, axis=1,
                                    lengths=self.lengths.expand(len(values), -1))


def summarize_segments(g, segments, needed=None):
    """Summaries (parts, batch, 9) of consecutive segments of each row of ``g`` (batch,
    total; :class:`Segments`): every parameter's gradient of a sample, flattened and
    joined, in a fixed number of operations whatever the number of parts (for few
    samples the per-part passes of :func:`summarize` would cost their launches, not
    their arithmetic): the power sums reduced together, in float64 (a segment's sum is
    sequential, not pairwise as ``torch.sum``'s), the central moments from them as for
    the factored forms (rounding ~ eps64 (mean/std)^4), the extremes together."""
    needed = ALL_COLUMNS if needed is None else needed
    g = g.to(torch.float64)
    batch, parts = len(g), len(segments.counts)
    powers = sorted(_powers(needed))
    terms = [g ** k if k > 1 else g for k in powers]
    if L1 in needed:
        terms.append(g.abs())
    sums = {}
    if terms:
        reduced = segments.reduce(torch.cat(terms)).reshape(len(terms), batch, parts)
        sums = dict(zip(powers + ([L1] if L1 in needed else []), reduced))
    extremes = [v for c, v in ((MAX, g), (MIN, -g)) if c in needed]
    if extremes:
        reduced = segments.reduce(torch.cat(extremes), "max").reshape(len(extremes), batch,
                                                                      parts)
        if MAX in needed:
            sums[MAX] = reduced[0]
        if MIN in needed:
            sums[MIN] = -reduced[-1]
    return _segment_summary(segments.counts.to(g.device), sums, batch, parts, g.device)


def _segment_summary(n, sums, batch, parts, device):
    """(parts, batch, 9) from {power or column: (batch, parts)} of segments of n[p]."""
    columns = {c: sums[c] for c in (L1, MIN, MAX) if c in sums}
    if 1 in sums:
        mean = columns[MEAN] = sums[1] / n
    if 2 in sums:
        columns[SUMSQ] = sums[2]
        if 1 in sums:
            columns[M2] = (sums[2] - n * mean * mean).clamp(min=0)
    if 3 in sums:
        columns[M3] = sums[3] - 3 * mean * sums[2] + 2 * n * mean ** 3
    if 4 in sums:
        columns[M4] = sums[4] - 4 * mean * sums[3] + 6 * mean * mean * sums[2] \
            - 3 * n * mean ** 4
    summary = torch.zeros(parts, batch, 9, dtype=torch.float64, device=device)
    summary[..., N] = n[:, None]
    if columns:
        index = sorted(columns)
        summary[..., index] = torch.stack([columns[c] for c in index], -1).transpose(0, 1)
    return summary


def _from_power_sums(n, sums, like):
    """Summary from float64 power sums ``sums`` {k: sum g^k} and the columns L1, MIN,
    MAX where given (exact algebra; rounding of the central moments ~ eps64
    (mean/std)^4). A power sum that is absent is not needed (its columns neither)."""
    columns = {c: sums[c] for c in (L1, MIN, MAX) if c in sums}
    if 1 in sums:
        mean = columns[MEAN] = sums[1] / n
    if 2 in sums:
        columns[SUMSQ] = sums[2]
        if 1 in sums:
            columns[M2] = (sums[2] - n * mean * mean).clamp(min=0)
    if 3 in sums:
        columns[M3] = sums[3] - 3 * mean * sums[2] + 2 * n * mean ** 3
    if 4 in sums:
        columns[M4] = (sums[4] - 4 * mean * sums[3] + 6 * mean * mean * sums[2]
                       - 3 * n * mean ** 4)
    return _stack(n, columns, like)


def _powers(needed):
    """The power sums k = 1..4 the needed columns come from."""
    powers = set()
    if needed & {MEAN, M2, M3, M4}:
        powers.add(1)
    if needed & {SUMSQ, M2, M3, M4}:
        powers.add(2)
    if needed & {M3, M4}:
        powers.add(3)
    if M4 in needed:
        powers.add(4)
    return powers


def summarize_outer(u, v, needed=None):
    """Summary of each row's outer product u_i v_j (u (batch, a), v (batch, b)),
    never forming it: power sums factorise, sum (u_i v_j)^k = sum u^k * sum v^k,
    and the extremes are products of the factors' extremes.
    """
    needed = ALL_COLUMNS if needed is None else needed
    u, v = u.to(torch.float64), v.to(torch.float64)
    sums = {}
    for k in _powers(needed):
        sums[k] = (u ** k).sum(1) * (v ** k).sum(1)
    if L1 in needed:
        sums[L1] = u.abs().sum(1) * v.abs().sum(1)
    if needed & {MIN, MAX}:
        corners = (torch.stack([u.amin(1), u.amax(1)], 1)[:, :, None]
                   * torch.stack([v.amin(1), v.amax(1)], 1)[:, None, :]).flatten(1)
        sums[MIN], sums[MAX] = corners.amin(1), corners.amax(1)
    return _from_power_sums(u.shape[1] * v.shape[1], sums, u)


def _pairs(x):
    """(batch, r*r, a): the products x[s] * x[t] of every pair of rows."""
    return (x[:, :, None, :] * x[:, None, :, :]).flatten(1, 2)


def summarize_low_rank(u, v, product, needed=None):
    """Summary of each row's sum of r outer products, G = sum_s u[s] (x) v[s]
    (u (batch, r, a), v (batch, r, b); a convolution with r output positions).

    The power sums come from r x r contractions of the factors in float64, e.g.
    sum G^2 = <U U^T, V V^T> (the "ghost norm") and sum G^4 = <P_u P_u^T, P_v P_v^T>
    with P the pairwise row products, instead of element-wise passes over G; only
    sum |G|, min and max read ``product`` (batch, a*b), G itself (in any element order;
    a tensor, or a function making it, called only when those are needed).
    """
    needed = ALL_COLUMNS if needed is None else needed
    powers = _powers(needed)
    u64, v64 = u.to(torch.float64), v.to(torch.float64)
    sums = {}
    if 1 in powers:
        sums[1] = (u64.sum(2) * v64.sum(2)).sum(1)
    if 2 in powers:
        gram_u, gram_v = torch.bmm(u64, u64.transpose(1, 2)), torch.bmm(v64, v64.transpose(1, 2))
        sums[2] = (gram_u * gram_v).sum((1, 2))
    if powers & {3, 4}:
        pu, pv = _pairs(u64), _pairs(v64)
        sums[3] = (torch.bmm(pu, u64.transpose(1, 2))
                   * torch.bmm(pv, v64.transpose(1, 2))).sum((1, 2))
        if 4 in powers:
            sums[4] = (torch.bmm(pu, pu.transpose(1, 2))
                       * torch.bmm(pv, pv.transpose(1, 2))).sum((1, 2))
    if needed & {L1, MIN, MAX}:
        dense = product() if callable(product) else product
        sums[L1], sums[MIN], sums[MAX] = dense.abs().sum(1), dense.amin(1), dense.amax(1)
    return _from_power_sums(u.shape[2] * v.shape[2], sums, u)


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
