"""OneVsAllClassifier: one sigmoid output per class, trained one-vs-all (UQGAN's baseline
and, trained beside its GAN, UQGAN's classifier)."""

import numpy as np
import torch
from skorch.utils import to_tensor

from .._image_classifier import ImageClassifierBase
from .._validation import check_number, encode_labels, is_finite_real
from ._losses import negative_weights, one_vs_all_loss
from ._networks import LeNet5
from ._outputs import OneVsAllOutputMixin
from ._schedule import AUTHORS_WEIGHT_DECAY, LinearDecayMixin

__all__ = ["OneVsAllClassifier"]


class OneVsAllClassifier(OneVsAllOutputMixin, LinearDecayMixin, ImageClassifierBase):
    """A CNN with one sigmoid output per class, trained one-vs-all.

    The one-vs-all baseline of UQGAN (Oberdiek, Fink & Rottmann 2022) with the authors'
    MNIST settings: LeNet-5, Adam (lr 1e-3 falling linearly to ``min_lr`` over the
    epochs, weight decay 2e-4), batch 256. The loss of a sample of class y is
    BCE(p_y, 1) plus ``lambda_negative`` times the mean of BCE(p_k, 0) over the other
    outputs, each weighted by n_k / n_y (1 for balanced classes).

    Outputs are read as in UQGAN: ``predict_proba`` gives P(class | x) from the odds of
    each output, ``predict_uncertainty`` the epistemic and aleatoric uncertainties,
    ``score_samples`` P(in distribution | x) (higher = more typical).

    Parameters
    ----------
    module : torch.nn.Module class or instance, default=LeNet5
        Must return one logit per class. ``n_classes``, ``in_channels`` and
        ``image_size`` are filled in from the data when the class takes them.
    criterion : default=torch.nn.BCEWithLogitsLoss
        Only what skorch reads to interpret outputs; the loss is the one above.
    optimizer : torch.optim.Optimizer class, default=torch.optim.Adam
        Passed to skorch, with weight decay 2e-4 by default
        (``optimizer__weight_decay``).
    lr : float, default=1e-3
        The learning rate of the first epoch, falling linearly to ``min_lr``.
    max_epochs : int, default=200
        The authors' count; far fewer suffice on MNIST (the reproduction's CPU preset).
    batch_size : int, default=256
        Samples per mini-batch, in training and prediction (skorch's
        ``batch_size``); ``-1`` makes the whole data set one batch.
    device : str, default="auto"
        Where the network trains and predicts (skorch's ``device``): ``"auto"`` uses
        CUDA when a GPU is visible, else the CPU.
    random_state : int or None, default=None
        Seeds initialisation, shuffling and dropout.
    min_lr : float, default=1e-5
        The learning rate of the last epoch (linear decay from ``lr``).
    lambda_negative : float, default=0.5
        Weight of the negative (other-class) targets, the authors' 0.5.
    train_split : default=None
        No validation split by default (the authors keep the best of many validation
        checks; here every epoch trains on all the data).
    **kwargs
        Anything :class:`skorch.NeuralNetClassifier` takes.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
    class_prior_ : ndarray of shape (n_classes,)
        Relative class frequencies of the training labels.
    module_ : torch.nn.Module
        The trained network.

    Examples
    --------
    >>> import numpy as np
    >>> from skgradunc import OneVsAllClassifier
    >>> from skgradunc.datasets import load_digits28
    >>> X, y = load_digits28(return_X_y=True)
    >>> clf = OneVsAllClassifier(max_epochs=2, random_state=0, verbose=0).fit(X[:300], y[:300])
    >>> clf.predict_proba(X[:2]).shape, clf.predict_uncertainty(X[:2]).shape
    ((2, 10), (2, 2))
    """

    def __init__(self, module=LeNet5, *, criterion=torch.nn.BCEWithLogitsLoss,
                 optimizer=torch.optim.Adam, lr=1e-3, max_epochs=200, batch_size=256,
                 device="auto", random_state=None, min_lr=1e-5, lambda_negative=0.5,
                 train_split=None, **kwargs):
        kwargs.setdefault("optimizer__weight_decay", AUTHORS_WEIGHT_DECAY)
        super().__init__(module, criterion=criterion, optimizer=optimizer, lr=lr,
                         max_epochs=max_epochs, batch_size=batch_size, device=device,
                         train_split=train_split, **kwargs)
        self.random_state = random_state
        self.min_lr = min_lr
        self.lambda_negative = lambda_negative

    def _check_recipe(self):
        self._check_min_lr()
        check_number(self.lambda_negative, "lambda_negative",
                     lambda v: is_finite_real(v) and v >= 0, "a non-negative number")

    def fit(self, X, y, **fit_params):
        """Validate, then train one-vs-all for ``max_epochs`` epochs.

        Parameters
        ----------
        X : array-like of shape (n_samples, channels, height, width)
            Training images, checked and converted as for
            :class:`~skgradunc.CNNClassifier` (uint8 is scaled by 1/255).
        y : array-like of shape (n_samples,)
            Class labels of any type (integers, strings, ...): ``classes_`` are the
            sorted labels seen (or the ``classes`` parameter), one output each. Their
            counts give ``class_prior_`` and the weights of the negative targets.
        **fit_params : dict
            Passed on to skorch's ``fit`` (to the module's ``forward`` and to the
            ``train_split`` call).

        Returns
        -------
        self : OneVsAllClassifier
            The fitted estimator.
        """
        continuing = self.warm_start and getattr(self, "initialized_", False)
        labels = self._count_classes(y, continuing)
        self._encoded = True    # skorch's fit calls partial_fit with these positions
        try:
            return super().fit(X, labels, **fit_params)
        finally:
            del self._encoded

    def partial_fit(self, X, y=None, classes=None, **fit_params):
        """Train ``max_epochs`` more epochs from the current weights (the class prior and
        negative weights of the first fit are kept).

        Parameters
        ----------
        X : array-like of shape (n_samples, channels, height, width)
            Training images, checked and converted as for
            :class:`~skgradunc.CNNClassifier` (uint8 is scaled by 1/255).
        y : array-like of shape (n_samples,), default=None
            Class labels, among ``classes_`` once fitted. Needed on the first call,
            whose labels give the classes (with ``classes``), the class prior and the
            negative weights.
        classes : array-like or None, default=None
            On the first call, every class (scikit-learn's ``partial_fit``
            convention), one output each; default: the ``classes`` parameter, else
            the sorted labels of ``y``. Ignored later.
        **fit_params : dict
            Passed on to skorch's ``partial_fit`` (to the module's ``forward`` and
            to the ``train_split`` call).

        Returns
        -------
        self : OneVsAllClassifier
            The fitted estimator.
        """
        if getattr(self, "_encoded", False) or y is None and hasattr(self, "classes_inferred_"):
            labels = y
        else:
            first = not hasattr(self, "negative_weights_")
            labels = self._count_classes(y, continuing=not first, classes=classes)
        return super().partial_fit(X, labels, **fit_params)

    def _count_classes(self, y, continuing, classes=None):
        """The labels as positions among the classes (scikit-learn's convention: the
        sorted labels seen, or the ``classes`` parameter; any label type); on a fresh
        start, the classes, the class prior and negative weights from their counts (one
        per output, a class of ``classes`` absent from y included)."""
        if y is None:
            raise ValueError("OneVsAllClassifier needs the labels as y: its class prior "
                             "and negative weights come from their counts")
        if continuing:
            return encode_labels(y, len(y), self.classes_)[1]
        classes, labels = encode_labels(y, len(y), self.classes if classes is None else classes)
        given = self.get_params_for("module").get("n_classes")
        if given is not None and given != len(classes):
            raise ValueError(f"module__n_classes={given}, but there are {len(classes)} "
                             f"classes {classes[:20].tolist()}: one output per class; pass "
                             "classes=[...] to name every output's class")
        counts = np.bincount(labels, minlength=len(classes))
        self.classes_inferred_ = classes
        self.class_prior_ = counts / counts.sum()
        # a class absent from y has no samples to weigh its negatives against
        self.negative_weights_ = negative_weights(np.maximum(counts, 1))
        return labels

    def _output_count(self, y, given):
        return len(self.classes_inferred_)

    def _output_classes(self):
        return self.classes_inferred_

    def get_loss(self, y_pred, y_true, X=None, training=False):
        """The one-vs-all loss of a batch (skorch's hook, in place of ``criterion``).

        BCE(p_y, 1) summed per sample and averaged over the batch, plus
        ``lambda_negative`` times the mean of BCE(p_k, 0) over the other outputs,
        each weighted by n_k / n_y.

        Parameters
        ----------
        y_pred : torch.Tensor of shape (batch_size, n_classes)
            The module's logits, one per class.
        y_true : torch.Tensor or array-like of int, shape (batch_size,)
            The batch's classes.
        X : object, default=None
            The batch's inputs; unused (skorch's signature).
        training : bool, default=False
            Whether the net is training; unused (skorch's signature).

        Returns
        -------
        loss : torch.Tensor
            The scalar loss, on the device of ``y_pred``.
        """
        y_true = to_tensor(y_true, device=y_pred.device)
        return one_vs_all_loss(y_pred, y_true, self.negative_weights_.to(y_pred.device),
                               self.lambda_negative)

    def _one_vs_all_probabilities(self, X):
        self.check_is_fitted()
        # in float64: float32 saturates confident samples to exactly 1 (ties in rankings)
        return self.forward(X).double().sigmoid().numpy()
