"""Layers whose weight gradient is a sum of outer products, one per position: a Linear
(over the positions of a sequence) and a convolution (over its output positions). The
form is chosen by cost, the same way for both."""

from ._calls import norm_only
from ._forms import LowRank, Outer

__all__ = ["LOW_RANK_GAIN", "product_form", "position_gradient", "product_bytes"]

# A layer with r positions per sample keeps its gradient factored (LowRank) when the
# r x r contractions that give its power sums, ~r^4 (a + b) multiply-adds, cost less than
# LOW_RANK_GAIN element-wise passes over the a*b gradient: on ResNet-18 with 32x32 inputs
# this is layer3 (2x2 positions); more positions are cheaper materialised.
LOW_RANK_GAIN = 4


def product_form(r, a, b, shiftable=False):
    """How the per-sample weight gradient of a layer applied at ``r`` positions, each an
    (a outputs) x (b inputs) outer product, is computed in the cheapest exact form:
    ``"outer"`` (one position: an outer product, never formed), ``"low_rank"`` (few
    positions: a sum of r outer products, power sums from r x r contractions; when only
    its L2 norm is needed, :func:`norm_only`, whenever its Gram matrices cost less than
    forming it: the "ghost norm" of Opacus's ghost clipping),
    ``"shifted"`` (a stride-1 convolution, materialised by kernel offsets from shifted
    views of its input, when ``shiftable``) or ``"dense"`` (materialised from the
    positions or the input windows)."""
    if r == 1:
        return "outer"
    if norm_only():   # the Gram matrices alone, r^2 (a + b) against r a b to form it
        if r * (a + b) <= a * b:
            return "low_rank"
    elif r ** 4 * (a + b) <= LOW_RANK_GAIN * a * b:
        return "low_rank"
    if shiftable:
        return "shifted"
    return "dense"


def position_gradient(form, u, v):
    """Per-sample gradient sum_s u[:, s] (x) v[:, s] of a layer applied at r positions,
    in the given form (Outer, LowRank or dense)."""
    if form == "outer":
        return Outer(u[:, 0], v[:, 0])
    if form == "low_rank":
        return LowRank(u, v)
    return LowRank(u, v).dense()


def product_bytes(form, r, a, b, size):
    """Bytes one sample's gradient occupies while summarised, in ``form``: its inputs (r
    positions of a + b values: a convolution's windows), plus the materialised gradient
    and the statistics' temporaries, or LowRank's float64 pair products. The shifted
    form counts its own inputs (see conv.py)."""
    inputs = size * r * (a + b)
    if form == "outer":
        return inputs
    if form == "low_rank" and norm_only():   # the factors and their Grams in float64
        return inputs + 8 * (r * (a + b) + 2 * r * r)
    if form == "low_rank":
        return inputs + size * (2 * a * b + 2 * r * r * (a + b))
    return inputs + size * 3 * a * b
