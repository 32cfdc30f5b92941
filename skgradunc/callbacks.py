"""skorch callbacks for the paper's training recipe."""

import math

from skorch.callbacks import Callback

__all__ = ["DivergenceGuard", "TrainingDivergedError"]


class TrainingDivergedError(RuntimeError):
    """Training produced a NaN or infinite loss; the network is unusable."""


class DivergenceGuard(Callback):
    """Stop training at the first non-finite training loss and say so.

    A diverged network predicts one class for everything and its gradients are
    NaN, so letting it flow into metrics would give silently wrong tables. The
    guard raises :class:`TrainingDivergedError` naming the epoch, batch and
    learning rate. Recovery is the caller's choice: lower ``lr`` (the paper's
    0.1 is marginal on small data sets) or train again with another seed;
    ``skgradunc train`` does the latter for you (``--retries``).
    """

    def on_epoch_begin(self, net, **kwargs):
        self._batch = 0

    def on_batch_end(self, net, batch=None, training=False, loss=None, **kwargs):
        if not training:
            return
        self._batch = getattr(self, "_batch", 0) + 1
        value = float(loss.detach()) if hasattr(loss, "detach") else float(loss)
        if not math.isfinite(value):
            epoch = len(net.history)
            lr = net.optimizer_.param_groups[0]["lr"]
            raise TrainingDivergedError(
                f"training diverged: the loss became {value} in epoch {epoch}, batch "
                f"{self._batch} (learning rate {lr:g}). Lower the learning rate (e.g. "
                f"lr={lr / 10:g}) or train again with another random_state.")
