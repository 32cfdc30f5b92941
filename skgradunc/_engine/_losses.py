"""The losses whose per-sample gradients are taken: one per target, on logits."""

import torch

__all__ = ["TARGETS", "target_loss"]

TARGETS = ("predicted", "all_ones", "all_ones_sigmoid", "uniform", "expected")


def target_loss(logits, target, temperature=1.0):
    """Per-sample loss (shape (n,)) of logits (n, q) at ``target``.

    ``"predicted"`` (Oberdiek et al. 2018)
        Negative log-likelihood at the predicted class: -log p_argmax.
    ``"all_ones"`` (Lee & AlRegib 2020)
        Binary cross-entropy between the softmax outputs and the all-ones
        confounding label, summed over the classes: -sum_k log p_k. The paper
        says "binary cross-entropy" without naming the output nonlinearity;
        its only public implementation (pytorch-ood's ``GradUncertainty``,
        which the authors' 2021 follow-up restates) applies it to the softmax,
        and so does this target (logit gradient q p - 1).
    ``"all_ones_sigmoid"``
        The same label read with per-class sigmoids:
        sum_k -log sigmoid(z_k) = sum_k softplus(-z_k) (logit gradient
        sigmoid(z) - 1); needs logits.
    a class index k (the "expected" target's terms)
        Negative log-likelihood at class k: -log p_k.
    ``"expected"`` (ExGrad, Igoe et al. 2022)
        Not one loss: each statistic is the expectation over the predicted distribution,
        sum_k p_k stat(grad(-log p_k)) (:mod:`._chunks`), so that with ``"l2"`` the
        feature is ExGrad's sum_y p(y|x) ||grad log p(y|x)||.
    ``"uniform"`` (GradNorm, Huang et al. 2021)
        Cross-entropy between the uniform distribution and the softmax of the
        logits divided by ``temperature`` (GradNorm's T),
        -(1/q) sum_k log softmax_k(z / T); it differs from KL(u || p) by the
        constant log q, so the gradients are identical.

    The loss is computed in float64 whatever the logits' precision. Its logit gradient
    at the predicted class, p - 1, cancels: in float32 a confident sample's 1 - p keeps
    only eps / (1 - p) of relative precision (6 % at p = 1 - 1e-6, nothing at p = 1 -
    1e-8), and every weight gradient inherits that error. In float64 the gradient reaches
    the network at float32's own relative precision.
    """
    if logits.dtype != torch.float64:
        logits = logits.to(torch.float64)
    if isinstance(target, int) and not isinstance(target, bool):
        return -torch.log_softmax(logits, dim=-1)[..., target]
    if target == "predicted":
        log_p = torch.log_softmax(logits, dim=-1)
        predicted = logits.argmax(dim=-1, keepdim=True)
        return -log_p.gather(-1, predicted).squeeze(-1)
    if target == "all_ones":
        return -torch.log_softmax(logits, dim=-1).sum(dim=-1)
    if target == "all_ones_sigmoid":
        return torch.nn.functional.softplus(-logits).sum(dim=-1)
    if target == "uniform":
        return -torch.log_softmax(logits / temperature, dim=-1).mean(dim=-1)
    raise ValueError(f"unknown target {target!r}; choose one of {TARGETS}")
