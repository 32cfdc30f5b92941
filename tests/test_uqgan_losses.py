"""UQGAN's losses and output reading against the formulas written out sample by sample
(math and loops, no code shared with skgradunc/uqgan/_losses.py)."""

import math

import numpy as np
import pytest
import scipy.stats
import torch

from skgradunc.uqgan._losses import (angular_diversity, class_probabilities, generated_loss,
                                     gradient_penalty, negative_weights, normalised_entropy,
                                     one_vs_all_loss)


def _bce(p, target):
    return -(target * math.log(p) + (1 - target) * math.log(1 - p))


def _sigmoid(v):
    return 1 / (1 + math.exp(-v))


def test_class_probabilities_follow_the_papers_formulas():
    rng = np.random.default_rng(0)
    p = rng.uniform(0.01, 0.99, size=(7, 4))
    prior = np.array([0.1, 0.2, 0.3, 0.4])
    probabilities, in_distribution = class_probabilities(p, prior)
    for i in range(len(p)):
        K = 4
        # odds(q_k) = odds(p_k) / (K - 1)
        q = [1 / (1 + (1 - pk) / pk * (K - 1)) for pk in p[i]]
        norm = sum(qk * pk for qk, pk in zip(q, prior))
        for k in range(K):
            assert probabilities[i, k] == pytest.approx(q[k] * prior[k] / norm, rel=1e-12)
        assert in_distribution[i] == pytest.approx(
            sum(qk * qk * pk for qk, pk in zip(q, prior)) / norm, rel=1e-12)
    # two classes: q = p
    two = rng.uniform(0.01, 0.99, size=(5, 2))
    _, p_in = class_probabilities(two, [0.5, 0.5])
    np.testing.assert_allclose(p_in, (two ** 2).sum(1) / two.sum(1), rtol=1e-12)
    # confident in one class: in distribution; no output on: out of distribution
    _, p_in = class_probabilities(np.array([[1 - 1e-9, 1e-9, 1e-9], [1e-6, 1e-6, 1e-6]]),
                                  np.full(3, 1 / 3))
    assert p_in[0] > 0.999 and p_in[1] < 1e-5


def test_normalised_entropy_is_scipys_entropy_over_log_k():
    P = np.random.default_rng(1).dirichlet(np.ones(5), size=6)
    np.testing.assert_allclose(normalised_entropy(P), scipy.stats.entropy(P, axis=1)
                               / math.log(5), rtol=1e-10)
    np.testing.assert_allclose(normalised_entropy(np.full((1, 5), 0.2)), [1.0], rtol=1e-12)


def test_negative_weights_are_count_ratios():
    W = negative_weights([10, 20, 40])
    for c, n_c in enumerate([10, 20, 40]):
        for k, n_k in enumerate([10, 20, 40]):
            assert W[c, k].item() == pytest.approx(n_k / n_c)


def test_one_vs_all_loss_by_hand():
    torch.manual_seed(0)
    logits = torch.randn(6, 3, dtype=torch.float64)
    y = torch.tensor([0, 1, 2, 2, 1, 0])
    W = negative_weights([5, 10, 20]).double()
    loss = one_vs_all_loss(logits, y, W, lambda_negative=0.6).item()
    positive = sum(_bce(_sigmoid(logits[i, y[i]].item()), 1) for i in range(6)) / 6
    negatives = [W[y[i], k].item() * _bce(_sigmoid(logits[i, k].item()), 0)
                 for i in range(6) for k in range(3) if k != y[i]]
    assert loss == pytest.approx(positive + 0.6 * sum(negatives) / len(negatives), rel=1e-12)


def test_generated_samples_are_negatives_of_their_own_class_only():
    logits = torch.tensor([[3.0, -1.0, 0.5], [0.2, 2.0, -4.0]], dtype=torch.float64)
    y = torch.tensor([2, 0])
    expected = (_bce(_sigmoid(0.5), 0) + _bce(_sigmoid(0.2), 0)) / 2
    assert generated_loss(logits, y).item() == pytest.approx(expected, rel=1e-12)
    # the other outputs do not matter
    other = logits.clone()
    other[0, :2] = torch.tensor([-9.0, 9.0])
    other[1, 1:] = torch.tensor([9.0, 9.0])
    assert generated_loss(other, y).item() == pytest.approx(expected, rel=1e-12)


class LinearCritic(torch.nn.Module):
    """D(e, y) = w . e + v . y: its gradient in e is w everywhere."""

    def __init__(self, w, v):
        super().__init__()
        self.w, self.v = torch.nn.Parameter(w), v

    def forward(self, code, y_onehot):
        return (code @ self.w + y_onehot @ self.v)[:, None]


def test_gradient_penalty_of_a_linear_critic():
    torch.manual_seed(0)
    w = torch.tensor([0.6, 0.8, 1.2], dtype=torch.float64)   # |w| = 1.562
    critic = LinearCritic(w, torch.ones(2, dtype=torch.float64))
    real, fake = torch.randn(5, 3, dtype=torch.float64), torch.randn(5, 3, dtype=torch.float64)
    y = torch.nn.functional.one_hot(torch.tensor([0, 1, 1, 0, 1]), 2).double()
    penalty = gradient_penalty(critic, real, fake, y)
    assert penalty.item() == pytest.approx((math.sqrt(0.36 + 0.64 + 1.44) - 1) ** 2, rel=1e-12)
    penalty.backward()                     # the critic is trained through it
    assert critic.w.grad is not None and torch.isfinite(critic.w.grad).all()


class QuadraticCritic(torch.nn.Module):
    """D(e, y) = |e|^2 / 2: its gradient at e is e itself."""

    def __init__(self):
        super().__init__()
        self.scale = torch.nn.Parameter(torch.tensor(1.0, dtype=torch.float64))

    def forward(self, code, y_onehot):
        return self.scale * (code ** 2).sum(1, keepdim=True) / 2


def test_gradient_penalty_is_taken_between_real_and_fake(monkeypatch):
    """With alpha fixed, the penalty is (|alpha real + (1 - alpha) fake| - 1)^2 per sample:
    it is measured at the interpolation, neither at the real nor at the fake codes."""
    real = torch.tensor([[3.0, 0.0], [0.0, 1.0]], dtype=torch.float64)
    fake = torch.tensor([[1.0, 0.0], [0.0, 5.0]], dtype=torch.float64)
    alpha = torch.tensor([[0.25], [0.5]], dtype=torch.float64)
    monkeypatch.setattr(torch, "rand", lambda *shape, **kwargs: alpha)
    penalty = gradient_penalty(QuadraticCritic(), real, fake, torch.zeros(2, 1))
    mixed = [0.25 * 3 + 0.75 * 1, 0.5 * 1 + 0.5 * 5]            # 1.5 and 3.0
    assert penalty.item() == pytest.approx(sum((m - 1) ** 2 for m in mixed) / 2, rel=1e-12)


def _angular_by_hand(codes, generated, y, eps=1e-6):
    total, count = 0.0, 0
    for c in sorted(set(y)):
        members = [i for i in range(len(y)) if y[i] == c]
        n = len(members)
        if n < 2:
            continue
        count += n
        for j in members:
            dirs = []
            for i in members:
                d = generated[i] - codes[j]
                dirs.append(d / np.linalg.norm(d))
            pair_sum = 0.0
            for a in range(n):
                for b in range(a + 1, n):
                    cos = min(max(float(dirs[a] @ dirs[b]), -1 + eps), 1 - eps)
                    pair_sum += -math.log(math.acos(cos) / math.pi + eps)
            total += pair_sum / (n * (n - 1) / 2)
    return total / count


def test_angular_diversity_follows_the_authors_loop():
    rng = np.random.default_rng(3)
    codes, generated = rng.normal(size=(9, 4)), rng.normal(size=(9, 4))
    y = [0, 1, 0, 2, 1, 0, 1, 1, 2]
    value = angular_diversity(torch.from_numpy(codes), torch.from_numpy(generated),
                              torch.tensor(y)).item()
    assert value == pytest.approx(_angular_by_hand(codes, generated, y), rel=1e-9)
    # generated codes all on one side of the real ones cost more than codes around them
    spread = np.array([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0], [0.0, -1.0]])
    bunched = np.array([[1.0, 0.0], [1.0, 0.1], [1.0, -0.1], [1.1, 0.0]])
    zeros = np.zeros((4, 2))
    labels = torch.zeros(4, dtype=torch.long)
    assert angular_diversity(torch.from_numpy(zeros), torch.from_numpy(spread), labels) < \
        angular_diversity(torch.from_numpy(zeros), torch.from_numpy(bunched), labels)
