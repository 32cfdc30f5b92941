import numpy as np
import pytest
import scipy.stats
import torch

from skgradunc.statistics import STATISTICS, finalize, merge, softmax_features, summarize

from reference import reference_statistics


def as_dict(row):
    return dict(zip(STATISTICS, row))


@pytest.mark.parametrize("make", [
    lambda rng: rng.normal(size=(4, 1000)),
    lambda rng: rng.standard_t(3, size=(4, 500)) * 1e-6 + 3e-6,  # heavy tails, tiny scale
    lambda rng: rng.exponential(size=(4, 77)) + 1e3,              # large offset: cancellation
])
def test_summaries_match_scipy(make):
    g = make(np.random.default_rng(0))
    ours = finalize(summarize(torch.from_numpy(g))).numpy()
    for row, values in zip(ours, g):
        ref = reference_statistics(values)
        for name, value in as_dict(row).items():
            np.testing.assert_allclose(value, ref[name], rtol=1e-9, atol=1e-12 * abs(ref["l2"]),
                                       err_msg=name)


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
        ref = reference_statistics(values)
        for name, value in as_dict(row).items():
            np.testing.assert_allclose(value, ref[name], rtol=1e-9, err_msg=name)


def test_constant_vector_has_zero_spread_skew_and_kurtosis():
    out = as_dict(finalize(summarize(torch.full((1, 10), 2.0, dtype=torch.float64)))[0].numpy())
    assert out["std"] == 0 and out["skew"] == 0 and out["kurtosis"] == 0
    assert out["mean"] == 2 and out["l1"] == 20


def test_subset_and_order_of_statistics():
    g = torch.randn(2, 30, dtype=torch.float64)
    both = finalize(summarize(g), ["kurtosis", "l1"]).numpy()
    np.testing.assert_allclose(both[:, 0], scipy.stats.kurtosis(g.numpy(), axis=1))
    np.testing.assert_allclose(both[:, 1], np.abs(g.numpy()).sum(1))


def test_softmax_features_against_scipy():
    logits = torch.tensor([[2.0, 1.0, -1.0, 0.0], [0.0, 0.0, 0.0, 0.0], [80.0, -80.0, 0, 0]],
                          dtype=torch.float64)
    out = softmax_features(logits).numpy()
    p = scipy.special.softmax(logits.numpy(), axis=1)
    np.testing.assert_allclose(out[:, 0], scipy.stats.entropy(p, axis=1) / np.log(4), atol=1e-12)
    np.testing.assert_allclose(out[:, 1], p.max(1))
    assert out[1, 0] == pytest.approx(1.0) and 0 <= out[2, 0] < 1e-30 + 1e-20  # no NaN at p=0
