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
        """Reset the batch count at the start of each epoch (skorch's hook).

        Parameters
        ----------
        net : skorch.NeuralNet
            The net being trained.
        **kwargs
            The other arguments skorch passes; unused.
        """
        self._batch = 0

    def on_batch_end(self, net, batch=None, training=False, loss=None, **kwargs):
        """Raise when a training batch's loss is not finite (skorch's hook).

        Validation batches are ignored.

        Parameters
        ----------
        net : skorch.NeuralNet
            The net being trained; its history and optimizer give the epoch and
            learning rate of the message.
        batch : object, default=None
            The batch's data; unused.
        training : bool, default=False
            Whether the batch was a training batch; only those are checked.
        loss : torch.Tensor or float, default=None
            The batch's loss.
        **kwargs
            The other arguments skorch passes; unused.

        Raises
        ------
        TrainingDivergedError
            When ``loss`` is NaN or infinite, naming the epoch, the batch and the
            learning rate.
        """
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
