import numpy as np
import pytest
import scipy.stats
import torch

from skgradunc.statistics import (STATISTICS, combine, finalize, merge, softmax_features,
                                  summarize, summarize_low_rank, summarize_outer)

from reference import reference_statistics


def as_dict(row):
    return dict(zip(STATISTICS, row))


def assert_statistics_close(row, values, rtol):
    """Our float64 statistics of ``values`` against numpy/scipy's. Sums in another order
    (numpy's pairwise blocks follow the CPU's vector width) round differently, so a
    quantity near zero gets an absolute floor: rtol for the dimensionless skewness and
    kurtosis, rtol times the values' root mean square for the rest."""
    ref = reference_statistics(values)
    scale = np.sqrt(np.mean(np.square(values)))
    for name, value in as_dict(row).items():
        floor = rtol if name in ("skew", "kurtosis") else rtol * scale
        np.testing.assert_allclose(value, ref[name], rtol=rtol, atol=floor, err_msg=name)


@pytest.mark.parametrize("make", [
    lambda rng: rng.normal(size=(4, 1000)),
    lambda rng: rng.standard_t(3, size=(4, 500)) * 1e-6 + 3e-6,  # heavy tails, tiny scale
    lambda rng: rng.exponential(size=(4, 77)) + 1e3,              # large offset: cancellation
])
def test_summaries_match_scipy(make):
    g = make(np.random.default_rng(0))
    ours = finalize(summarize(torch.from_numpy(g))).numpy()
    for row, values in zip(ours, g):
        assert_statistics_close(row, values, rtol=1e-9)


def test_outer_product_summary_equals_the_materialised_product():
    rng = np.random.default_rng(2)
    u, v = rng.normal(size=(3, 10)), rng.normal(0.2, 1, size=(3, 785))
    ours = finalize(summarize_outer(torch.from_numpy(u), torch.from_numpy(v))).numpy()
    for row, a, b in zip(ours, u, v):
        assert_statistics_close(row, np.outer(a, b).ravel(), rtol=1e-9)


@pytest.mark.parametrize("rank", [2, 4, 5])
def test_low_rank_summary_equals_the_materialised_sum_of_outer_products(rank):
    rng = np.random.default_rng(rank)
    u = rng.normal(size=(3, rank, 12))
    v = rng.normal(0.3, 1, size=(3, rank, 70)) + 2.0   # offset: moments need care
    dense = np.einsum("nsa,nsb->nab", u, v).reshape(3, -1)
    ours = finalize(summarize_low_rank(torch.from_numpy(u), torch.from_numpy(v),
                                       torch.from_numpy(dense))).numpy()
    for row, values in zip(ours, dense):
        assert_statistics_close(row, values, rtol=1e-8)


def test_combining_many_parts_at_once_equals_pairwise_merging():
    rng = np.random.default_rng(3)
    parts = [torch.from_numpy(rng.normal(i, 1 + i, (2, 5 + 3 * i))) for i in range(5)]
    summaries = torch.stack([summarize(p) for p in parts])
    pairwise = summaries[0]
    for s in summaries[1:]:
        pairwise = merge(pairwise, s)
    torch.testing.assert_close(combine(summaries), pairwise, rtol=1e-10, atol=1e-10)
    # several groups at once, overlapping, equal one group at a time
    membership = torch.tensor([[1, 0, 1, 0, 0], [0, 1, 1, 1, 1], [1, 1, 1, 1, 1]], dtype=bool)
    together = combine(summaries, membership)
    for g, row in enumerate(membership):
        torch.testing.assert_close(together[g], combine(summaries[row]), rtol=1e-12,
                                   atol=1e-12)


def test_merging_parts_is_exact_even_far_apart():
    rng = np.random.default_rng(1)
    parts = [rng.normal(0, 1, (3, 40)), rng.normal(50, 0.1, (3, 7)), rng.gamma(2, 1, (3, 300)),
             rng.normal(-1e-4, 1e-5, (3, 1))]
    merged = summarize(torch.from_numpy(parts[0]))
    for part in parts[1:]:
        merged = merge(merged, summarize(torch.from_numpy(part)))
    whole = np.concatenate(parts, axis=1)
    ours = finalize(merged).numpy()
    for row, values in zip(ours, whole):
        assert_statistics_close(row, values, rtol=1e-9)


def test_constant_vector_has_zero_spread_skew_and_kurtosis():
    out = as_dict(finalize(summarize(torch.full((1, 10), 2.0, dtype=torch.float64)))[0].numpy())
    assert out["std"] == 0 and out["skew"] == 0 and out["kurtosis"] == 0
    assert out["mean"] == 2 and out["l1"] == 20


def test_subset_and_order_of_statistics():
    g = torch.randn(2, 30, dtype=torch.float64)
    both = finalize(summarize(g), ["kurtosis", "l1"]).numpy()
    np.testing.assert_allclose(both[:, 0], scipy.stats.kurtosis(g.numpy(), axis=1), atol=1e-7)
    np.testing.assert_allclose(both[:, 1], np.abs(g.numpy()).sum(1))


def test_softmax_features_against_scipy():
    logits = torch.tensor([[2.0, 1.0, -1.0, 0.0], [0.0, 0.0, 0.0, 0.0], [80.0, -80.0, 0, 0]],
                          dtype=torch.float64)
    out = softmax_features(logits).numpy()
    p = scipy.special.softmax(logits.numpy(), axis=1)
    np.testing.assert_allclose(out[:, 0], scipy.stats.entropy(p, axis=1) / np.log(4), atol=1e-12)
    np.testing.assert_allclose(out[:, 1], p.max(1))
    assert out[1, 0] == pytest.approx(1.0) and 0 <= out[2, 0] < 1e-30 + 1e-20  # no NaN at p=0
