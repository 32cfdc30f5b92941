"""CNNClassifier: a skorch classifier with the paper's training recipe."""

import inspect

import numpy as np
import torch
from skorch import NeuralNetClassifier
from skorch.callbacks import LRScheduler
from skorch.dataset import ValidSplit
from torch.optim.lr_scheduler import ReduceLROnPlateau
from skorch.helper import SliceDataset
from torch.utils.data import Dataset

from ._device import AutoDeviceMixin
from ._validation import (check_images, check_labels, check_non_negative_int, check_number,
                          check_positive_int, check_positive_real, is_finite_real, is_int)
from .callbacks import DivergenceGuard
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


def _describe_split(split):
    """skorch's ValidSplit has no repr; say what it is."""
    if isinstance(split, ValidSplit):
        return f"ValidSplit({split.cv!r}, stratified={split.stratified})"
    return repr(split)


def _split_needs(split):
    """What a ValidSplit needs of the data, in words ('' for other splits)."""
    if not isinstance(split, ValidSplit):
        return ""
    if is_int(split.cv) and split.stratified:  # scikit-learn's StratifiedKFold
        return (f"It holds out 1/{split.cv} of the data, stratified by class, and needs at "
                f"least {split.cv} samples of one class ({split.cv} of every class to "
                f"validate on each). ")
    if is_int(split.cv):
        return f"It holds out 1/{split.cv} of the data and needs at least {split.cv} samples. "
    if split.stratified:  # StratifiedShuffleSplit
        return (f"It holds out {split.cv:.0%} of the data, stratified by class, and needs 2 "
                f"samples of every class and at least one sample per class in each part. ")
    return ""


class CNNClassifier(AutoDeviceMixin, NeuralNetClassifier):
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
    lr : float, default=0.1
        The paper's initial learning rate. On small data sets such as
        :func:`~skgradunc.datasets.load_digits28` it diverges; use 0.01 there.
    max_epochs : int, default=20
    batch_size : int, default=256
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

    @property
    def _default_callbacks(self):
        return super()._default_callbacks + [
            ("lr_scheduler", LRScheduler(
                policy=ReduceLROnPlateau, monitor=plateau_score, mode="max", factor=0.1,
                patience=self.lr_patience, min_lr=self.min_lr)),
            ("divergence_guard", DivergenceGuard()),
        ]

    # -- module construction -------------------------------------------------
    def _inferred_module_kwargs(self):
        """in_channels / image_size / n_classes from the data, if the module takes them."""
        shape = getattr(self, "input_shape_", None)
        inferred = {}
        if shape is not None:
            inferred.update(in_channels=shape[0], image_size=tuple(shape[1:]))
        if getattr(self, "n_classes_", None) is not None:
            inferred["n_classes"] = self.n_classes_
        if not isinstance(self.module, type):
            return {}
        accepted = inspect.signature(self.module).parameters
        return {k: v for k, v in inferred.items() if k in accepted}

    def initialize_module(self):
        kwargs = {**self._inferred_module_kwargs(), **self.get_params_for("module")}
        module = self.initialized_instance(self.module, kwargs)
        self.module_ = module
        return self

    def _module_kwargs_shape(self):
        """(C, H, W) when module__in_channels and module__image_size are both given."""
        given = self.get_params_for("module")
        if "in_channels" not in given or "image_size" not in given:
            return None
        size = given["image_size"]
        size = (size, size) if np.isscalar(size) else tuple(size)
        return (int(given["in_channels"]), *(int(s) for s in size))

    def _expected_input_shape(self):
        return getattr(self, "input_shape_", None) or self._module_kwargs_shape()

    # -- training ------------------------------------------------------------
    def _check_hyperparameters(self):
        """scikit-learn's rule: __init__ stores, fit validates. A NaN or zero lr would
        otherwise train, diverge and be "recovered" with another NaN."""
        check_positive_real(self.lr, "lr")
        check_positive_int(self.max_epochs, "max_epochs")
        check_number(self.batch_size, "batch_size",  # -1: skorch's whole data set
                     lambda v: is_int(v) and (v > 0 or v == -1),
                     "a positive integer or -1 (the whole data set)")
        check_non_negative_int(self.lr_patience, "lr_patience")
        check_number(self.min_lr, "min_lr", lambda v: is_finite_real(v) and v >= 0,
                     "a non-negative finite number")
        check_number(self.random_state, "random_state", lambda v: v is None or is_int(v),
                     "None or an integer (it seeds torch)")

    def _check_training_data(self, X, y, continuing):
        """Validate X and y; on a fresh start record the data's shape and classes."""
        continuing = continuing and getattr(self, "initialized_", False)
        expected = self.input_shape_ if continuing else self._module_kwargs_shape()
        X = check_images(X, expected)
        given_classes = self.get_params_for("module").get("n_classes")
        n_classes = self.n_classes_ if continuing else given_classes
        y = check_labels(y, len(X), n_classes=n_classes)
        if not continuing:
            if len(np.unique(y)) < 2:
                raise ValueError(f"y holds a single class ({int(y[0])}); need at least two")
            self.input_shape_ = tuple(X.shape[1:])
            self.n_classes_ = int(given_classes or (y.max() + 1))
        return X, y

    def fit(self, X, y, **fit_params):
        """Validate the images and labels, then train with the paper's recipe.

        Returns
        -------
        self : CNNClassifier
        """
        self._check_hyperparameters()
        if not isinstance(X, (Dataset, SliceDataset)):
            X, y = self._check_training_data(X, y, continuing=self.warm_start)
        return self._seeded(super().fit, X, y, **fit_params)

    def partial_fit(self, X, y=None, classes=None, **fit_params):
        """Train for ``max_epochs`` more epochs, keeping the current weights."""
        self._check_hyperparameters()
        if not isinstance(X, (Dataset, SliceDataset)):
            # skorch's fit also lands here, after initialising: checks are then cheap
            X, y = self._check_training_data(X, y, continuing=True)
        return self._seeded(super().partial_fit, X, y, classes=classes, **fit_params)

    def get_split_datasets(self, X, y=None, **fit_params):
        """skorch's train/validation split, whose failure on too few samples says so.

        scikit-learn's own message ("n_splits=5 cannot be greater than the number of
        members in each class") names neither the split nor the way around it.
        """
        dataset = self.get_dataset(X, y)
        if not self.train_split:
            return dataset, None
        args = (dataset,) if y is None else (dataset, y)  # as skorch: no y, no y argument
        try:
            return self.train_split(*args, **fit_params)
        except ValueError as exc:
            if not isinstance(self.train_split, ValidSplit):
                raise   # the user's own split: its own message
            raise ValueError(self._split_failure(y, exc)) from exc

    def _split_failure(self, y, exc):
        split = _describe_split(self.train_split)
        if y is None and self.train_split.stratified:
            return (f"fit got a data set without y, but the internal validation split {split} "
                    "stratifies by the labels: pass them as y (a dataset's items may carry "
                    "them too), or pass train_split=ValidSplit(5, stratified=False), or "
                    f"train_split=None to train without a validation split. (scikit-learn: "
                    f"{exc})")
        if y is None:
            data = "the data set"
        else:
            counts = np.bincount(np.asarray(y))
            counts = counts[counts > 0]
            data = (f"{len(y)} samples of {len(counts)} classes, at most {counts.max()} of a "
                    f"class")
        return (f"fit got {data}: too few for the internal validation split {split}. "
                f"{_split_needs(self.train_split)}Pass train_split=None to train without a "
                f"validation split (the learning-rate schedule then watches the training "
                f"loss), or give more samples. (scikit-learn: {exc})")

    def _seeded(self, method, *args, **kwargs):
        if self.random_state is None:
            return method(*args, **kwargs)
        devices = [torch.cuda.current_device()] if torch.cuda.is_available() else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(int(self.random_state))
            return method(*args, **kwargs)

    def check_data(self, X, y):
        super().check_data(X, y)
        if getattr(self, "n_classes_", None) is not None:
            # every output of the module is a class, even if y lacks some of them
            self.classes_inferred_ = np.arange(self.n_classes_)

    # -- prediction ----------------------------------------------------------
    def _check_predict_input(self, X):
        if isinstance(X, (Dataset, SliceDataset)):
            return X
        self.check_is_fitted()
        return check_images(X, self._expected_input_shape())

    def predict_proba(self, X):
        """Class probabilities, shape (n_samples, n_classes); softmax of the logits."""
        return super().predict_proba(self._check_predict_input(X))

    def predict(self, X):
        """Predicted class (argmax of the probabilities) for every image."""
        return super().predict(self._check_predict_input(X))

    def forward(self, X, training=False, device="cpu"):
        return super().forward(self._check_predict_input(X), training=training,
                               device=device)
