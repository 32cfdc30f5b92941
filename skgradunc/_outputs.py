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

__all__ = ["OUTPUTS", "NetworkOutputError", "resolve_output", "sigmoid_outputs", "first_scores",
           "class_logits", "check_scores"]

OUTPUTS = ("auto", "logits", "probabilities", "log_probabilities")


class NetworkOutputError(ValueError):
    """The network's output cannot be read as class scores of the stated kind."""


# probabilities (log-probabilities) are accepted within float32 rounding of [0, 1] (of
# <= 0) and of a sum of 1 (a log-sum-exp of 0)
_TOLERANCE = 1e-4
_SUM_TOLERANCE = 1e-3


def resolve_output(output, estimator):
    """``output`` with ``"auto"`` resolved: what a skorch net's criterion says its module
    returns, as skorch itself reads it (CrossEntropyLoss and BCEWithLogitsLoss take
    logits, BCELoss probabilities, NLLLoss probabilities in a NeuralNetClassifier, which
    takes their log, and log-probabilities elsewhere), else ``"logits"``.

    Returns (kind, guessed): ``guessed`` is True when neither the user nor a criterion
    said what the outputs are; :func:`check_scores` then refuses the ambiguous cases."""
    if output not in OUTPUTS:
        raise ValueError(f"unknown output {output!r}; choose one of {OUTPUTS}")
    if output != "auto":
        return output, False
    net, criterion = _skorch_criterion(estimator)
    if criterion is None:
        return "logits", True
    if isinstance(criterion, (nn.CrossEntropyLoss, nn.BCEWithLogitsLoss)):
        return "logits", False
    if isinstance(criterion, nn.BCELoss):
        return "probabilities", False
    if isinstance(criterion, nn.NLLLoss):
        from skorch import NeuralNetClassifier
        return ("probabilities" if isinstance(net, NeuralNetClassifier)
                else "log_probabilities"), False
    return "logits", True


def sigmoid_outputs(output, estimator):
    """Who says the module's outputs are per-class sigmoids, in words, or None.

    With ``output="auto"``, a skorch net whose criterion is ``BCEWithLogitsLoss`` or
    ``BCELoss`` reads each output as its own sigmoid: one output is a two-class network,
    but several are one-vs-all (or multi-label) scores, whose softmax is no distribution
    the network was trained to give (:func:`check_scores` refuses them)."""
    if output != "auto":
        return None   # the user said what the outputs are
    net, criterion = _skorch_criterion(estimator)
    if not isinstance(criterion, (nn.BCEWithLogitsLoss, nn.BCELoss)):
        return None
    while getattr(net, "estimator", None) is not None:   # FrozenEstimator lends its net's
        net = net.estimator
    return (f"{type(net).__name__}'s criterion {type(criterion).__name__} reads each output "
            "as its own sigmoid")


def _skorch_criterion(estimator):
    """(net, criterion) of the first skorch net in the chain (FrozenEstimator -> net), if
    its predictions are not post-processed by a nonlinearity of the user's; else
    (None, None)."""
    while estimator is not None:
        criterion = getattr(estimator, "criterion_", None)
        if isinstance(criterion, nn.Module):
            if getattr(estimator, "predict_nonlinearity", "auto") != "auto":
                return None, None
            return estimator, getattr(criterion, "_orig_mod", criterion)  # torch.compile'd
        estimator = getattr(estimator, "estimator", None)
    return None, None


def first_scores(output):
    """The class scores in a module's output: a tuple or list by its first element."""
    if isinstance(output, (tuple, list)) and output:
        return output[0]
    return output


def class_logits(output, kind, n_samples):
    """(n_samples, q >= 2) logits for the module's ``output`` of the given kind (see the
    module docstring). Checks shapes only, so it also runs under ``torch.func.vmap``
    (which calls the module on one sample at a time)."""
    scores = first_scores(output)
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


def check_scores(output, kind, guessed=False, offset=0, for_gradients=True, sigmoids=None):
    """Refuse class scores that cannot be what ``kind`` says, naming the problem and the
    first sample concerned (``offset`` + row): NaN or infinity, probabilities outside
    [0, 1] or not summing to 1, log-probabilities above 0 or not normalised. When the kind
    was ``guessed``: one score per sample (a logit or a probability? no way to tell) and,
    ``for_gradients``, logits that look like probabilities. ``sigmoids``
    (:func:`sigmoid_outputs`): several outputs are one-vs-all scores, not a softmax's.
    ``output`` is what :func:`class_logits` accepted."""
    scores = first_scores(output).detach()
    scores = scores.reshape(len(scores), -1)
    n_samples, q = scores.shape
    if sigmoids and q > 1 and for_gradients:
        raise NetworkOutputError(
            f"{sigmoids}: its {q} outputs are one-vs-all (or multi-label) scores, not the "
            "logits of a softmax, so the softmax-based targets, softmax features and "
            "GradNorm would describe a distribution the network was never trained to give; "
            "pass output='logits' to read them as softmax logits all the same")
    finite = torch.isfinite(scores).all(dim=1)
    if not finite.all():
        first = int((~finite).nonzero()[0, 0])
        raise NetworkOutputError(
            f"the network's output holds NaN or infinity for {int((~finite).sum())} of "
            f"{n_samples} samples (first: sample {offset + first}); a network that diverged "
            "in training, or inputs far outside its range, give no usable gradients")
    if guessed and q == 1:
        raise NetworkOutputError(
            "the network returns one score per sample (a two-class network), which may be "
            "a logit or a probability; say which: output='logits' (BCEWithLogitsLoss) or "
            "output='probabilities' (a final sigmoid)")
    if kind == "probabilities":
        _refuse_invalid(scores, _probability_rows(scores), kind, offset,
                        "values in [0, 1]" + (", summing to 1" if q > 1 else ""))
    elif kind == "log_probabilities":
        valid = (scores <= _TOLERANCE).all(dim=1)
        if q > 1:
            valid &= torch.logsumexp(scores.double(), dim=1).abs() <= _SUM_TOLERANCE
        _refuse_invalid(scores, valid, kind, offset,
                        "values <= 0" + (", exp summing to 1" if q > 1 else ""))
    elif guessed and for_gradients and q > 1:
        if _probability_rows(scores).all():
            raise NetworkOutputError(
                "the network's outputs look like probabilities (every row is non-negative "
                "and sums to 1), but they are read as logits, which gives wrong gradients "
                "and softmax features; pass output='probabilities' (or output='logits' if "
                "they really are logits)")


def _probability_rows(scores):
    """Which rows of (n, q) scores are probabilities: in [0, 1] and, for q > 1, summing
    to 1, within float32 rounding."""
    rows = ((scores >= -_TOLERANCE) & (scores <= 1 + _TOLERANCE)).all(dim=1)
    if scores.shape[1] > 1:
        rows &= (scores.sum(dim=1) - 1).abs() <= _SUM_TOLERANCE
    return rows


def _refuse_invalid(scores, valid, kind, offset, what):
    if valid.all():
        return
    first = int((~valid).nonzero()[0, 0])
    row = scores[first]
    hints = [other for other in _plausible_kinds(row) if other != kind]
    advice = ", or ".join(f"output={hint!r} if they are {hint.replace('_', '-')}"
                          for hint in hints)
    raise NetworkOutputError(
        f"the network's outputs are read as {kind.replace('_', '-')}, but those for sample "
        f"{offset + first} are not ({what}): "
        f"{[round(v, 4) for v in row[:6].tolist()]}; pass {advice}")


def _plausible_kinds(row):
    """The kinds one row of scores could be, the most specific first: logits always."""
    kinds = []
    if _probability_rows(row[None]).all():
        kinds.append("probabilities")
    if (row <= _TOLERANCE).all() and (len(row) == 1 or abs(
            float(torch.logsumexp(row.double(), dim=0))) <= _SUM_TOLERANCE):
        kinds.append("log_probabilities")
    return kinds + ["logits"]
