"""The authors' learning-rate recipe for their classifiers (``configs/softmax`` and
``configs/ova``): Adam, lr falling linearly to ``min_lr`` over the epochs, shared by
:class:`~skgradunc.OneVsAllClassifier` and the softmax baseline of the UQGAN protocol."""

from skorch.callbacks import LRScheduler
from torch.optim.lr_scheduler import LinearLR

from .._validation import check_number, is_finite_real

__all__ = ["LinearDecayMixin", "AUTHORS_WEIGHT_DECAY"]

# the authors' configs/{softmax,ova}/mnist_0-4.yml: Adam, lr 1e-3 -> 1e-5, weight decay 2e-4
AUTHORS_WEIGHT_DECAY = 2e-4


class LinearDecayMixin:
    """For an :class:`~skgradunc._image_classifier.ImageClassifierBase` with ``lr``,
    ``min_lr`` and ``max_epochs``: the last epoch trains at ``min_lr``."""

    def _lr_scheduler(self):
        return LRScheduler(policy=LinearLR, start_factor=1.0, **self._linear_decay())

    def _linear_decay(self):
        """LinearLR's end and length. get_params reads the callbacks, so values fit will
        refuse give a placeholder here, not an error."""
        try:
            return {"end_factor": float(self.min_lr) / float(self.lr),
                    "total_iters": max(int(self.max_epochs) - 1, 1)}
        except (TypeError, ValueError, ZeroDivisionError, OverflowError):
            return {"end_factor": 1.0, "total_iters": 1}

    def _check_min_lr(self):
        check_number(self.min_lr, "min_lr", lambda v: is_finite_real(v) and 0 < v <= self.lr,
                     f"a positive number at most lr ({self.lr})")
