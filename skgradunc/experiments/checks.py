"""Checks of the settings shared by ``skgradunc train``, ``reproduce`` and the Python API.

Each raises a ``ValueError`` naming the setting, what it must be and the value given, so
that a bad value is refused before any work instead of being replaced or misused.
"""

import math
import numbers

import torch
from skorch.callbacks import Callback

from .._device import resolve_device

__all__ = ["check_positive_int", "check_non_negative_int", "check_positive_real",
           "check_fraction", "check_seed", "check_device", "CompletedEpochs",
           "raise_if_interrupted"]

SEED_LIMIT = 2 ** 32  # numpy's RandomState takes seeds below this


def _is_int(value):
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def check_positive_int(name, value, *, optional=False):
    """``value`` must be an integer >= 1 (or None when ``optional``)."""
    if optional and value is None:
        return
    if not _is_int(value) or value < 1:
        alternative = " or None (the data set's default)" if optional else ""
        raise ValueError(f"{name} must be a positive integer{alternative}, got {value!r}")


def check_non_negative_int(name, value):
    """``value`` must be an integer >= 0."""
    if not _is_int(value) or value < 0:
        raise ValueError(f"{name} must be a non-negative integer, got {value!r}")


def check_positive_real(name, value, *, optional=False):
    """``value`` must be a finite number > 0 (or None when ``optional``)."""
    if optional and value is None:
        return
    if (not isinstance(value, numbers.Real) or isinstance(value, bool)
            or not math.isfinite(value) or value <= 0):
        alternative = " or None (the data set's default)" if optional else ""
        raise ValueError(f"{name} must be a positive finite number{alternative}, got "
                         f"{value!r}")


def check_fraction(name, value):
    """``value`` must lie strictly between 0 and 1."""
    if (not isinstance(value, numbers.Real) or isinstance(value, bool)
            or not 0 < value < 1):
        raise ValueError(f"{name} must be a fraction between 0 and 1 (exclusive), got "
                         f"{value!r}")


def check_seed(name, value, *, count=1):
    """``value`` .. ``value + count - 1`` must all be valid numpy seeds."""
    top = SEED_LIMIT - count
    if not _is_int(value) or not 0 <= value <= top:
        raise ValueError(f"{name} must be an integer from 0 to {top}, got {value!r}")


def check_device(device):
    """A device torch knows, and CUDA only where there is one."""
    try:
        resolved = resolve_device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(f"unknown device {device!r}; use auto, cpu, cuda or cuda:N "
                         f"({exc})") from exc
    if resolved.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device={device!r} but CUDA is not available here; use "
                         "--device cpu (or auto)")


class CompletedEpochs(Callback):
    """Count the epochs that ran to their end; the last callback of a net.

    skorch catches KeyboardInterrupt in ``fit`` and returns the net trained so far,
    and a Ctrl-C in the last epoch leaves as many history rows as a finished fit:
    this count is what tells the two apart (see :func:`raise_if_interrupted`).
    """

    def on_train_begin(self, net, **kwargs):
        self.count_ = 0

    def on_epoch_end(self, net, **kwargs):
        self.count_ += 1


def raise_if_interrupted(net):
    """Re-raise the Ctrl-C that skorch swallowed, so that a net trained for fewer
    epochs than asked never passes as a finished one. ``net`` must have a
    :class:`CompletedEpochs` callback."""
    completed = next(cb for _, cb in net.callbacks_ if isinstance(cb, CompletedEpochs))
    if completed.count_ < net.max_epochs:
        raise KeyboardInterrupt(f"training stopped after {completed.count_} of "
                                f"{net.max_epochs} epochs")
