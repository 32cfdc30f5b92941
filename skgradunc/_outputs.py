"""What a network returns, read as class scores whose softmax is its class distribution.

Networks end in different places: logits (``CrossEntropyLoss``), probabilities (a
final softmax, as skorch's ``NLLLoss`` convention wants), log-probabilities
(``LogSoftmax`` + PyTorch's ``NLLLoss``) or one logit for two classes
(``BCEWithLogitsLoss``). Every target and softmax feature of the package is defined on
logits, so the module's output is mapped onto logits ``z`` with ``softmax(z)`` the
network's class distribution:

* ``"logits"`` (n, q): as they are;
* ``"log_probabilities"`` (n, q): as they are (log p differs from the logits by a
  per-row constant, to which softmax and log-softmax are blind, so losses and
  gradients are the same);
* ``"probabilities"`` (n, q): ``log p``;
* one score per sample, (n,) or (n, 1): the two-class case, class 1 the score's: a
  logit ``s`` becomes ``[0, s]`` (softmax ``[sigmoid(-s), sigmoid(s)]``), a probability
  ``p`` becomes ``[log(1 - p), log p]``, a log-probability likewise.

Anything else (a 3-D output, a dict) is refused with a message naming its shape. A
tuple or list counts by its first element, skorch's convention for modules with
several outputs.
"""

import torch
from torch import nn

__all__ = ["OUTPUTS", "NetworkOutputError", "resolve_output", "class_logits", "check_scores"]

OUTPUTS = ("auto", "logits", "probabilities", "log_probabilities")


class NetworkOutputError(ValueError):
    """The network's output cannot be read as class scores of the stated kind."""


# probabilities are accepted within float32 rounding of [0, 1] and of a sum of 1
_PROBABILITY_TOLERANCE = 1e-4


def resolve_output(output, estimator):
    """``output`` with ``"auto"`` resolved: what a skorch net's criterion says its module
    returns (skorch's own reading: CrossEntropyLoss and BCEWithLogitsLoss take logits,
    NLLLoss in NeuralNetClassifier and BCELoss take probabilities), else ``"logits"``.

    Returns (kind, checked): ``checked`` is True when the kind was not stated by the user
    or a criterion, so the outputs are checked for looking like probabilities."""
    if output not in OUTPUTS:
        raise ValueError(f"unknown output {output!r}; choose one of {OUTPUTS}")
    if output != "auto":
        return output, False
    criterion = _skorch_criterion(estimator)
    if criterion is None:
        return "logits", True
    if isinstance(criterion, (nn.CrossEntropyLoss, nn.BCEWithLogitsLoss)):
        return "logits", False
    if isinstance(criterion, (nn.NLLLoss, nn.BCELoss)):
        return "probabilities", False
    return "logits", True


def _skorch_criterion(estimator):
    """The criterion of the first skorch net in the chain (FrozenEstimator -> net), if
    its predictions are not post-processed by a nonlinearity of the user's."""
    while estimator is not None:
        criterion = getattr(estimator, "criterion_", None)
        if isinstance(criterion, nn.Module):
            if getattr(estimator, "predict_nonlinearity", "auto") != "auto":
                return None
            return getattr(criterion, "_orig_mod", criterion)  # torch.compile'd
        estimator = getattr(estimator, "estimator", None)
    return None


def _first(output):
    if isinstance(output, (tuple, list)) and output:
        return output[0]
    return output


def class_logits(output, kind, n_samples):
    """(n_samples, q >= 2) logits for the module's ``output`` of the given kind (see the
    module docstring). Checks shapes only, so it also runs under ``torch.func.vmap``
    (which calls the module on one sample at a time)."""
    scores = _first(output)
    if not isinstance(scores, torch.Tensor):
        raise NetworkOutputError(
            f"the network returned {type(output).__name__}, not a tensor of class scores; "
            "wrap the module so that it returns logits of shape (n_samples, n_classes)")
    if scores.dim() not in (1, 2):
        raise NetworkOutputError(
            f"the network's output has shape {tuple(scores.shape)}; expected class scores "
            "of shape (n_samples, n_classes), or (n_samples,) / (n_samples, 1) for one "
            "logit of a two-class network")
    if scores.shape[0] != n_samples:
        raise NetworkOutputError(
            f"the network returned {scores.shape[0]} rows of class scores (shape "
            f"{tuple(scores.shape)}) for {n_samples} sample(s); it must return one row per "
            "sample, also for a single sample (a squeeze() in forward drops that axis)")
    if scores.dim() == 1:
        scores = scores[:, None]
    if scores.shape[1] == 1:
        return _two_classes(scores, kind)
    if kind == "probabilities":
        return torch.log(scores.clamp_min(torch.finfo(scores.dtype).tiny))
    return scores


def _two_classes(score, kind):
    """(n, 2) logits from one score per sample, class 1 being the score's class."""
    tiny = torch.finfo(score.dtype).tiny
    if kind == "logits":
        return torch.cat([torch.zeros_like(score), score], dim=1)
    if kind == "probabilities":
        return torch.log(torch.cat([1 - score, score], dim=1).clamp_min(tiny))
    # log(1 - p) from log p: log(-expm1(log p))
    return torch.cat([torch.log((-torch.expm1(score)).clamp_min(tiny)), score], dim=1)


def check_scores(output, kind, checked, offset=0):
    """Refuse class scores that cannot be what ``kind`` says, naming the problem and the
    first sample concerned (``offset`` + row): NaN or infinity, probabilities outside
    [0, 1] or not summing to 1; with ``checked``, logits that look like probabilities.
    ``output`` is what :func:`class_logits` accepted."""
    scores = _first(output).detach()
    scores = scores.reshape(len(scores), -1)
    n_samples, q = scores.shape
    finite = torch.isfinite(scores).all(dim=1)
    if not finite.all():
        first = int((~finite).nonzero()[0, 0])
        raise NetworkOutputError(
            f"the network's output holds NaN or infinity for {int((~finite).sum())} of "
            f"{n_samples} samples (first: sample {offset + first}); a network that diverged "
            "in training, or inputs far outside its range, give no usable gradients")
    if kind != "probabilities" and not (checked and kind == "logits" and q > 1):
        return
    inside = ((scores >= -_PROBABILITY_TOLERANCE)
              & (scores <= 1 + _PROBABILITY_TOLERANCE)).all(dim=1)
    if q > 1:
        inside &= (scores.sum(dim=1) - 1).abs() <= _PROBABILITY_TOLERANCE * q
    if kind == "probabilities" and not inside.all():
        first = int((~inside).nonzero()[0, 0])
        raise NetworkOutputError(
            f"output='probabilities' but the network's outputs for sample {offset + first} "
            f"are not probabilities (values in [0, 1]{', summing to 1' if q > 1 else ''}): "
            f"{[round(v, 4) for v in scores[first, :6].tolist()]}; pass output='logits' if "
            "they are logits")
    if kind == "logits" and inside.all():
        raise NetworkOutputError(
            "the network's outputs look like probabilities (every row is non-negative and "
            "sums to 1), but they are read as logits, which gives wrong gradients and "
            "softmax features; pass output='probabilities' (or output='logits' if they "
            "really are logits)")
