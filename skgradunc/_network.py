"""One adapter for "skorch net / FrozenEstimator / torch module": what wraps what, the
torch module inside, the shape of one sample."""

import torch

__all__ = ["find_module", "sample_shape"]


def _chain(estimator):
    """The estimator and whatever it wraps (FrozenEstimator.estimator, ...)."""
    while estimator is not None:
        yield estimator
        estimator = getattr(estimator, "estimator", None)


def find_module(estimator):
    """The torch module of a module, a fitted skorch net, or anything wrapping one."""
    for candidate in _chain(estimator):
        if isinstance(candidate, torch.nn.Module):
            return candidate
        if isinstance(getattr(candidate, "module_", None), torch.nn.Module):
            return candidate.module_
    raise TypeError(
        f"cannot find a torch module in {type(estimator).__name__}: pass a fitted skorch "
        "net, FrozenEstimator(net) or a torch.nn.Module returning logits")


def sample_shape(estimator, module=None):
    """The shape one sample must have: the module's ``input_shape`` (PaperCNN's), else
    the ``input_shape_`` an estimator or what it wraps learned in fit; None if unknown."""
    shape = getattr(module, "input_shape", None)
    for candidate in _chain(estimator):
        shape = shape or getattr(candidate, "input_shape_", None)
    return tuple(shape) if shape is not None else None
