"""UQGAN's losses and its reading of one-vs-all outputs (Oberdiek, Fink & Rottmann 2022;
the authors' ``uqgan.py``, ``utils.py`` and ``cls_models/base.py`` at commit 4050b2f).

Layout: ``logits`` (n, K) are the classifier's raw outputs, p_k = sigmoid(logits_k) its
one-vs-all probabilities; ``y`` (n,) integer classes 0..K-1; ``prior`` (K,) the relative
class frequencies of the training set; ``neg_weight`` (K, K) with entry (c, k) = n_k / n_c,
the weight of output k's negative target on a sample of class c (all ones when balanced).
"""

import math

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["class_probabilities", "normalised_entropy", "negative_weights",
           "one_vs_all_loss", "generated_loss", "gradient_penalty", "angular_diversity"]


# -- reading the outputs (numpy, float64) ---------------------------------------------------
def class_probabilities(p, prior, eps=1e-16):
    """P(k | x) and P(in distribution | x) from one-vs-all probabilities p (n, K).

    q_k = p_k / ((2 - K) p_k + K - 1) corrects the odds of each one-vs-all output for its
    K - 1 negative classes (odds(q_k) = odds(p_k) / (K - 1)); P(k | x) = q_k pi_k / sum_j
    q_j pi_j, and P_in(x) = sum_k q_k^2 pi_k / sum_k q_k pi_k, the expected q under P(. | x).
    Epistemic uncertainty is 1 - P_in.
    """
    p = np.asarray(p, dtype=np.float64)
    k = p.shape[1]
    q = p / ((2 - k) * p + k - 1) + eps
    weighted = q * np.asarray(prior, dtype=np.float64)
    total = weighted.sum(axis=1, keepdims=True)
    return weighted / total, (q * weighted).sum(axis=1) / total[:, 0]


def normalised_entropy(probabilities, eps=1e-16):
    """Entropy of each row divided by log K: UQGAN's aleatoric uncertainty, in [0, 1]."""
    P = np.asarray(probabilities, dtype=np.float64)
    return -(P * np.log(P + eps)).sum(axis=1) / math.log(P.shape[1])


def negative_weights(counts):
    """(K, K): entry (c, k) = n_k / n_c (``compute_rel_class_frequencies``)."""
    counts = torch.as_tensor(counts, dtype=torch.float32)
    return counts[None, :] / counts[:, None]


# -- training losses (torch) -----------------------------------------------------------------
def one_vs_all_loss(logits, y, neg_weight, lambda_negative):
    """Real samples: BCE(p_y, 1) summed per sample, plus ``lambda_negative`` times the
    weighted mean of BCE(p_k, 0) over the other outputs k != y."""
    target = F.one_hot(y.long(), logits.shape[1]).to(logits.dtype)
    bce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    positive = (bce * target).sum() / len(y)
    others = target == 0
    negative = (bce * neg_weight[y.long()])[others].mean()
    return positive + lambda_negative * negative


def generated_loss(logits, y):
    """Generated out-of-class samples of class y: BCE(p_y, 0), output y only, averaged."""
    own = logits.gather(1, y.long()[:, None])
    return F.binary_cross_entropy_with_logits(own, torch.zeros_like(own))


def gradient_penalty(critic, real, fake, y_onehot):
    """WGAN-GP: mean (||grad D(x_hat, y)||_2 - 1)^2 at x_hat = a real + (1 - a) fake,
    a ~ U(0, 1) per sample."""
    alpha = torch.rand(len(real), *([1] * (real.dim() - 1)), device=real.device)
    mixed = (alpha * real + (1 - alpha) * fake).requires_grad_(True)
    out = critic(mixed, y_onehot)
    grad, = torch.autograd.grad(out, mixed, grad_outputs=torch.ones_like(out),
                                create_graph=True)
    return ((grad.reshape(len(grad), -1).norm(dim=1) - 1) ** 2).mean()


def angular_diversity(codes, generated, y, eps=1e-6):
    """UQGAN's "logcosine" regulariser (``utils.cosine_loss_classwise``, space "log").

    For each class c with n_c >= 2 samples in the batch and each real code e_j of class c,
    the generated codes of class c as unit directions d_i seen from e_j; their angles
    theta_il = arccos(d_i . d_l) / pi enter as -log(theta_il + eps), averaged over the
    n_c (n_c - 1) / 2 pairs; the sum over j and c is divided by sum_c n_c. Small when
    the generated codes surround each real one from all sides.
    """
    total, count = codes.new_zeros(()), 0
    for c in torch.unique(y):
        mask = y == c
        n = int(mask.sum())
        if n < 2:
            continue
        real, fake = codes[mask], generated[mask]
        # (n_real, n_fake, d): the fake codes' directions from each real one
        directions = F.normalize(fake[None, :, :] - real[:, None, :], dim=2)
        cosine = (directions @ directions.transpose(1, 2)).clamp(-1 + eps, 1 - eps)
        angles = -torch.log(torch.acos(cosine) / math.pi + eps)
        pairs = torch.triu(torch.ones(n, n, dtype=torch.bool, device=codes.device), 1)
        total = total + angles[:, pairs].sum() / (n * (n - 1) / 2)
        count += n
    return total / count if count else total
