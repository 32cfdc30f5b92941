"""The softmax baseline of the UQGAN paper (its "Max. Softmax" and "Entropy" rows): the
same LeNet-5 trained with cross-entropy and the authors' recipe
(``configs/softmax/mnist_0-4.yml``). Internal: the UQGAN protocol trains it, and its
gradients feed the gradient meta classifiers and GradNorm there."""

import torch

from .._image_classifier import ImageClassifierBase
from ._networks import LeNet5
from ._schedule import AUTHORS_WEIGHT_DECAY, LinearDecayMixin

__all__ = ["SoftmaxBaseline"]


class SoftmaxBaseline(LinearDecayMixin, ImageClassifierBase):
    """LeNet-5 with softmax outputs: Adam, lr 1e-3 falling linearly to ``min_lr``,
    weight decay 2e-4, batch 256, no validation split (as :class:`OneVsAllClassifier`)."""

    def __init__(self, module=LeNet5, *, criterion=torch.nn.CrossEntropyLoss,
                 optimizer=torch.optim.Adam, lr=1e-3, max_epochs=200, batch_size=256,
                 device="auto", random_state=None, min_lr=1e-5, train_split=None,
                 **kwargs):
        kwargs.setdefault("optimizer__weight_decay", AUTHORS_WEIGHT_DECAY)
        super().__init__(module, criterion=criterion, optimizer=optimizer, lr=lr,
                         max_epochs=max_epochs, batch_size=batch_size, device=device,
                         train_split=train_split, **kwargs)
        self.random_state = random_state
        self.min_lr = min_lr

    def _check_recipe(self):
        self._check_min_lr()
