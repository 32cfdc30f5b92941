"""Checks of the settings of ``skgradunc train`` and ``reproduce`` (numbers: see
:mod:`skgradunc._validation`), and of a training cut short by Ctrl-C; a progress bar over
training epochs.

Each raises a ``ValueError`` naming the setting, what it must be and the value given, so
that a bad value is refused before any work instead of being replaced or misused.
"""

from skorch.callbacks import Callback
from tqdm.auto import tqdm

from .._validation import is_int

__all__ = ["check_seed", "CompletedEpochs", "raise_if_interrupted", "EpochBar"]

SEED_LIMIT = 2 ** 32  # numpy's RandomState takes seeds below this


def check_seed(value, name, *, count=1):
    """``value`` .. ``value + count - 1`` must all be valid numpy seeds."""
    top = SEED_LIMIT - count
    if not is_int(value) or not 0 <= value <= top:
        raise ValueError(f"{name} must be an integer from 0 to {top}, got {value!r}")


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


class EpochBar(Callback):
    """A progress bar over training epochs."""

    def __init__(self, description):
        self.description = description

    def on_train_begin(self, net, **kwargs):
        self.bar = tqdm(total=net.max_epochs, desc=self.description, unit="epoch", leave=False,
                        disable=None)  # no bar when stderr is a file or pipe

    def on_epoch_end(self, net, **kwargs):
        row = net.history[-1]
        self.bar.set_postfix(loss=f"{row['train_loss']:.3f}",
                             acc=f"{row.get('valid_acc', float('nan')):.3f}")
        self.bar.update()

    def on_train_end(self, net, **kwargs):
        self.bar.close()
        self.bar = None  # a closed bar is of no use to the trained net
