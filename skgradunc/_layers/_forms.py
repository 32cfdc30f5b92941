"""The forms a per-sample gradient is kept in, cheapest first, and their summaries.

A rule returns, per parameter, one of: :class:`Outer` (one outer product a sample, never
formed), :class:`LowRank` (a sum of a few outer products), :class:`Rows` (an embedding's
touched rows) or a dense tensor (n, ...) whose elements are the gradient's in any order
(statistics are order-free).
"""

import torch

from ..statistics import summarize, summarize_low_rank, summarize_outer, with_zeros

__all__ = ["Outer", "LowRank", "Rows", "dense", "summarize_gradient"]


class Outer:
    """A per-sample gradient that is the outer product of two factors, kept factored:
    row i is u[i] (x) v[i], flattened (a dense layer's weight gradient)."""

    def __init__(self, u, v):
        self.u, self.v = u, v

    def dense(self):
        return torch.bmm(self.u[:, :, None], self.v[:, None, :])


class Rows:
    """A per-sample embedding gradient kept sparse: ``rows[i, s]`` is the gradient of
    row ``index[i, s]`` of the (num_embeddings, dim) weight, every other row is zero
    (``zeros`` elements a sample)."""

    def __init__(self, rows, index, num_embeddings):
        self.rows, self.index, self.num_embeddings = rows, index, num_embeddings
        self.zeros = (num_embeddings - rows.shape[1]) * rows.shape[2]

    def dense(self):
        n, _, dim = self.rows.shape
        full = self.rows.new_zeros(n, self.num_embeddings, dim)
        return full.scatter_add_(1, self.index[:, :, None].expand(-1, -1, dim), self.rows)


class LowRank:
    """A per-sample gradient that is a sum of a few outer products, kept factored:
    row i is sum_s u[i, s] (x) v[i, s] (u (n, r, a), v (n, r, b)), a layer with r
    positions per sample (a convolution's output positions, a sequence's tokens)."""

    def __init__(self, u, v):
        self.u, self.v = u, v

    def dense(self):
        """(n, b, a): the gradient transposed (measured faster as windows @ grad^T)."""
        return torch.bmm(self.v.transpose(1, 2), self.u)


def dense(g):
    """Any form as a dense tensor (n, ...)."""
    return g.dense() if isinstance(g, (Outer, LowRank, Rows)) else g


def summarize_gradient(g, needed=None):
    """The (n, 9) summary of :mod:`skgradunc.statistics` of a gradient in any form;
    ``needed``: the summary columns read later (None: all), the others may be left 0."""
    if isinstance(g, Outer):
        return summarize_outer(g.u, g.v, needed)
    if isinstance(g, LowRank):
        return summarize_low_rank(g.u, g.v, lambda: g.dense().flatten(1), needed)
    if isinstance(g, Rows):
        return with_zeros(summarize(g.rows.flatten(1), needed), g.zeros)
    return summarize(g.reshape(g.shape[0], -1), needed)
