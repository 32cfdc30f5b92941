"""One adapter for "skorch net / FrozenEstimator / torch module": what wraps what, the
torch module inside, the shape of one sample, whether it is fitted; and what every
computation with a user's network needs: eval mode given back, the parameters gradients
are taken of, one lock per network."""

import copy
import threading
import weakref
from contextlib import contextmanager

import torch
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.utils.validation import check_is_fitted

__all__ = ["find_module", "sample_shape", "is_fitted", "evaluation_mode",
           "trainable_parameters", "network_lock", "clone_sharing_network"]


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


def is_fitted(estimator):
    """A torch module (always), a fitted skorch net, or a fitted scikit-learn estimator."""
    if isinstance(estimator, torch.nn.Module):
        return True
    if hasattr(estimator, "check_is_fitted"):  # skorch nets
        try:
            estimator.check_is_fitted()
        except NotFittedError:
            return False
        return True
    try:
        check_is_fitted(estimator)
    except NotFittedError:
        return False
    return True


def clone_sharing_network(estimator):
    """scikit-learn's clone of an estimator whose first parameter, ``estimator``, is a
    network: a fitted network is data, not a hyper-parameter, so the clone shares it
    (FrozenEstimator's rule); an unfitted one is cloned. What scikit-learn's clone carries
    over besides the parameters comes along: set_output's container, metadata requests."""
    params = estimator.get_params(deep=False)
    network = params.pop("estimator")
    shared = network if is_fitted(network) else clone(network)
    new = type(estimator)(shared, **{k: clone(v, safe=False) for k, v in params.items()})
    for state in ("_sklearn_output_config", "_metadata_request"):
        if state in estimator.__dict__:
            setattr(new, state, copy.deepcopy(estimator.__dict__[state]))
    return new


@contextmanager
def evaluation_mode(module):
    """Put every submodule in eval mode and give each its own flag back after."""
    modes = [(m, m.training) for m in module.modules()]
    module.eval()
    try:
        yield module
    finally:
        for m, mode in modes:
            m.training = mode


def trainable_parameters(module):
    """Names of the parameters that gradients are taken for.

    Those with ``requires_grad``; a module frozen entirely (none requires
    grad, e.g. prepared for inference) counts as all of its weights.
    """
    named = list(module.named_parameters())
    if not named:
        raise ValueError(f"{type(module).__name__} has no parameters to take gradients of")
    trainable = [name for name, p in named if p.requires_grad]
    return trainable or [name for name, _ in named]


_NETWORK_LOCKS = weakref.WeakKeyDictionary()
_NETWORK_LOCKS_GUARD = threading.Lock()


def network_lock(module):
    """One lock per network. Computing features hooks into the network while it runs,
    so two threads computing with one network (dask's threads, joblib's threading
    backend, a dask worker's tasks) take turns instead of seeing each other's hooks."""
    with _NETWORK_LOCKS_GUARD:
        lock = _NETWORK_LOCKS.get(module)
        if lock is None:
            lock = _NETWORK_LOCKS[module] = threading.Lock()
        return lock
