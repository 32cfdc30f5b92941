"""What every image classifier of this package shares: skorch's NeuralNetClassifier with
checked images and labels, the module's shape filled in from the data, seeded training,
hyper-parameters validated in fit, and validation-split failures that say why.

:class:`~skgradunc.CNNClassifier` (the paper's recipe) and
:class:`~skgradunc.OneVsAllClassifier` (UQGAN's baseline) add their recipes on top.
"""

import inspect

import numpy as np
from skorch import NeuralNetClassifier
from skorch.dataset import ValidSplit
from skorch.helper import SliceDataset
from torch.utils.data import Dataset

from ._device import AutoDeviceMixin
from ._random import seeded_torch
from ._validation import (check_images, check_labels, check_number, check_positive_int,
                          check_positive_real, is_int)
from .callbacks import DivergenceGuard

__all__ = ["ImageClassifierBase"]


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


class ImageClassifierBase(AutoDeviceMixin, NeuralNetClassifier):
    """skorch's NeuralNetClassifier for images, with this package's checks (internal).

    A subclass's ``__init__`` stores ``random_state`` and its recipe's parameters, and
    ``_check_recipe`` validates them; ``fit`` validates everything first.
    """

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
        check_number(self.random_state, "random_state", lambda v: v is None or is_int(v),
                     "None or an integer (it seeds torch)")
        self._check_recipe()

    @property
    def _default_callbacks(self):
        # a subclass's learning-rate schedule, then the guard every net of the package has
        return super()._default_callbacks + [
            ("lr_scheduler", self._lr_scheduler()),
            ("divergence_guard", DivergenceGuard()),
        ]

    def _lr_scheduler(self):
        """A subclass's learning-rate schedule: a skorch LRScheduler."""
        raise NotImplementedError

    def _check_recipe(self):
        """A subclass's own parameters, checked before training."""

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
            self.n_classes_ = self._output_count(y, given_classes)
        return X, y

    def _output_count(self, y, given):
        """The module's outputs for labels ``y`` (the classes 0..K-1 by position)."""
        return int(given or (y.max() + 1))

    def _output_classes(self):
        """The class of each output: by default its position."""
        return np.arange(self.n_classes_)

    def fit(self, X, y, **fit_params):
        """Validate the hyper-parameters, images and labels, then train.

        Returns
        -------
        self : the fitted classifier
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
        with seeded_torch(self.random_state):
            return method(*args, **kwargs)

    def check_data(self, X, y):
        # every output of the module is a class, even if y lacks some of them (skorch's
        # own check infers the classes from the labels it trains on)
        known = self._output_classes() if getattr(self, "n_classes_", None) is not None \
            else None
        super().check_data(X, y)
        if known is not None:
            self.classes_inferred_ = known

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
