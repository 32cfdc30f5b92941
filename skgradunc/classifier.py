"""CNNClassifier: a skorch classifier with the paper's training recipe."""

import torch
from skorch.callbacks import LRScheduler
from torch.optim.lr_scheduler import ReduceLROnPlateau

from ._image_classifier import ImageClassifierBase
from ._validation import check_non_negative_int, check_number, is_finite_real
from .nets import PaperCNN

__all__ = ["CNNClassifier"]

# Keras' l2(1e-3) adds 1e-3 * sum(w**2) over kernels: gradient 2e-3 * w, biases
# untouched. SGD's weight_decay adds weight_decay * w, so 2e-3 on non-bias
# parameters reproduces the paper's regulariser exactly.
PAPER_WEIGHT_DECAY = 2e-3
NO_DECAY_ON_BIASES = [("*bias", {"weight_decay": 0.0})]


def plateau_score(net):
    """What the learning-rate schedule watches: validation accuracy, or, when the
    net trains without a validation split (``train_split=None``), the negated
    training loss (so that higher is better in both cases)."""
    row = net.history[-1]
    return row["valid_acc"] if "valid_acc" in row else -row["train_loss"]


class CNNClassifier(ImageClassifierBase):
    """The paper's CNN and training recipe as a scikit-learn classifier.

    A :class:`skorch.NeuralNetClassifier` whose defaults are the recipe of
    Oberdiek et al. (2018): :class:`~skgradunc.nets.PaperCNN`, cross-entropy,
    SGD with learning rate 0.1 and momentum 0.9, batch size 256, L2
    regularisation 1e-3 on the kernels (Keras' ``l2(1e-3)``, i.e. SGD weight
    decay 2e-3 with biases excluded), and the learning rate divided by 10
    whenever validation accuracy stagnates, down to 1e-3. The module's
    ``in_channels``, ``image_size`` and ``n_classes`` are taken from the
    training data unless given as ``module__*`` parameters.

    Every hyper-parameter works with ``get_params``/``set_params``,
    :func:`~sklearn.base.clone` and :class:`~sklearn.model_selection.GridSearchCV`,
    including ``module__*``, ``optimizer__*`` and
    ``callbacks__lr_scheduler__*`` (e.g. ``callbacks__lr_scheduler__patience``).

    Parameters
    ----------
    module : torch.nn.Module class or instance, default=PaperCNN
        Must return logits.
    criterion : torch.nn.Module class, default=torch.nn.CrossEntropyLoss
        The training loss, passed to skorch; cross-entropy on the logits, as in
        the paper.
    optimizer : torch.optim.Optimizer class, default=torch.optim.SGD
        Passed to skorch. Its defaults here are momentum 0.9 and weight decay
        2e-3 on every parameter but the biases (``optimizer__*`` overrides them).
    lr : float, default=0.1
        The paper's initial learning rate. On small data sets such as
        :func:`~skgradunc.datasets.load_digits28` it diverges; use 0.01 there.
    max_epochs : int, default=20
        Number of training epochs (passes over the training data).
    batch_size : int, default=256
        Samples per mini-batch, in training and prediction (skorch's
        ``batch_size``); ``-1`` makes the whole data set one batch.
    device : str, default="auto"
        ``"auto"`` trains on CUDA when a GPU is visible, else on the CPU.
    random_state : int or None, default=None
        Seeds weight initialisation, shuffling and dropout for a reproducible
        fit; the global torch random state is restored afterwards.
    lr_patience : int, default=3
        Epochs without improvement of validation accuracy before the learning
        rate is divided by 10 (the paper does not give it). Without a
        validation split the training loss is watched instead.
    min_lr : float, default=1e-3
        The floor of the learning-rate schedule.
    **kwargs
        Anything :class:`skorch.NeuralNetClassifier` takes (``train_split``,
        ``optimizer__*``, ``module__*``, ``callbacks``, ``verbose``...).

    Attributes
    ----------
    module_ : torch.nn.Module
        The trained network.
    input_shape_ : tuple of int
        ``(channels, height, width)`` seen in ``fit``.
    classes_ : ndarray
        ``arange(n_classes)``.
    history_ : skorch.History
        Per-epoch losses, accuracy and learning rate.

    Notes
    -----
    Inputs: float arrays ``(n, C, H, W)`` (cast to float32), ``uint8``
    images (scaled by 1/255), ``(n, H, W)`` (one channel added) and, once the
    image shape is known, flat ``(n, C*H*W)`` rows. NaN/inf, empty input,
    other integer dtypes and images of the wrong shape raise a ``ValueError``
    or ``TypeError`` that names the problem. Labels must be integers
    ``0..K-1`` (integral floats are accepted).

    Hyper-parameters are stored by ``__init__`` and checked by ``fit`` (as in
    scikit-learn): a NaN, infinite or non-positive ``lr``, a ``max_epochs`` or
    ``batch_size`` that is not a positive integer (``batch_size=-1``: the whole
    data set) and the like raise a ``ValueError`` naming the parameter. Data
    too small for the validation split (skorch's default
    ``ValidSplit(5, stratified=True)`` needs 5 samples of a class) raise a
    ``ValueError`` that says so; ``train_split=None`` trains on every sample.

    A non-finite training loss raises
    :class:`~skgradunc.callbacks.TrainingDivergedError` instead of returning
    a broken network.

    Examples
    --------
    >>> from skgradunc import CNNClassifier
    >>> from skgradunc.datasets import load_digits28
    >>> X, y = load_digits28(return_X_y=True)
    >>> net = CNNClassifier(lr=0.01, max_epochs=2, random_state=0, verbose=0)
    >>> net.fit(X[:300], y[:300]).predict(X[:3]).shape
    (3,)
    """

    def __init__(self, module=PaperCNN, *, criterion=torch.nn.CrossEntropyLoss,
                 optimizer=torch.optim.SGD, lr=0.1, max_epochs=20, batch_size=256,
                 device="auto", random_state=None, lr_patience=3, min_lr=1e-3, **kwargs):
        kwargs.setdefault("optimizer__momentum", 0.9)
        kwargs.setdefault("optimizer__weight_decay", PAPER_WEIGHT_DECAY)
        kwargs.setdefault("optimizer__param_groups", NO_DECAY_ON_BIASES)
        super().__init__(module, criterion=criterion, optimizer=optimizer, lr=lr,
                         max_epochs=max_epochs, batch_size=batch_size, device=device,
                         **kwargs)
        self.random_state = random_state
        self.lr_patience = lr_patience
        self.min_lr = min_lr

    def _lr_scheduler(self):
        return LRScheduler(policy=ReduceLROnPlateau, monitor=plateau_score, mode="max",
                           factor=0.1, patience=self.lr_patience, min_lr=self.min_lr)

    def _check_recipe(self):
        check_non_negative_int(self.lr_patience, "lr_patience")
        check_number(self.min_lr, "min_lr", lambda v: is_finite_real(v) and v >= 0,
                     "a non-negative finite number")
