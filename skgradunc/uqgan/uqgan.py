"""UQGANClassifier: a one-vs-all classifier shielded, class by class, by out-of-class
examples that a conditional GAN generates in an auto-encoder's latent space (Oberdiek,
Fink & Rottmann 2022), trained as the authors' ``uqgan.py`` trains it."""

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.validation import check_is_fitted

from .._device import check_device
from .._random import seeded_torch
from .._validation import (check_images, check_number, check_positive_int, check_positive_real,
                           encode_labels, is_finite_real, is_int)
from ._networks import one_hot
from ._outputs import OneVsAllOutputMixin
from ._training import UQGANTraining

__all__ = ["UQGANClassifier"]

PREDICT_BATCH = 1024


class UQGANClassifier(OneVsAllOutputMixin, ClassifierMixin, BaseEstimator):
    """UQGAN: one-vs-all classification with per-class shielding by a conditional GAN.

    ``fit`` runs the authors' two phases (github.com/RonMcKay/UQGAN, MNIST settings):

    1. a conditional auto-encoder (the authors' ``SmallCAE``) learns a class-conditioned
       latent space, then is frozen;
    2. for ``iterations`` batches: ``critic_iterations`` steps of the WGAN-GP critic in
       latent space; one generator step, whose generated codes, decoded, must be rejected
       by their own class's one-vs-all output (``lambda_cl``), stay near the class's codes
       (the critic) and surround them from all sides (the angular regulariser,
       ``lambda_reg``); ``classifier_iterations`` steps of the one-vs-all classifier on
       the real batch (positives, and ``lambda_real_ood`` times the weighted other-class
       negatives) and on the generated images as negatives of their own class only
       (``1 - lambda_real_ood``).

    Outputs are UQGAN's: ``predict_proba`` P(class | x), ``predict_uncertainty`` the
    epistemic (1 - P(in distribution | x)) and aleatoric (normalised entropy)
    uncertainties, ``score_samples`` P(in distribution | x).

    Parameters
    ----------
    latent_dim : int, default=32
        The auto-encoder's code size (the authors' MNIST value).
    noise_dim : int, default=128
        The generator's uniform noise size.
    cae_epochs : int, default=200
        Auto-encoder epochs (the authors'; the learning rate drops tenfold after epochs
        50 and 100, as theirs). The authors keep the epoch of least validation loss;
        here the last one is kept.
    cae_lr : float, default=1e-3
        Adam learning rate of the auto-encoder (divided by 10 after epochs 50 and 100).
    iterations : int, default=2000
        Generator steps (one batch each), the authors' MNIST count.
    critic_iterations, classifier_iterations : int, default=5
        Critic and classifier steps per iteration.
    lambda_gp, lambda_cl, lambda_reg, lambda_real_ood : float, default=10, 2, 32, 0.6
        The authors' MNIST weights of the gradient penalty, of the generated samples'
        rejection in the generator's loss, of the angular regulariser, and of the real
        other-class negatives in the classifier's loss.
    gan_lr, gan_min_lr : float, default=1e-4, 1e-5
        Adam (betas 0, 0.9) learning rate of generator and critic, falling linearly.
    classifier_lr, classifier_min_lr : float, default=1e-3, 1e-4
        Adam learning rate of the classifier, falling linearly.
    batch_size : int, default=256
        Samples per step, in every phase; full batches only, so ``fit`` needs at least
        ``batch_size`` samples. At least 2 (the generator's BatchNorm).
    device : str, default="auto"
        Where training and prediction run: ``"auto"`` uses CUDA when available, else
        the CPU. The fitted networks are kept on the CPU.
    random_state : int or None, default=None
        Seeds the networks, the batches and the noise.
    verbose : bool, default=True
        Progress bars on a terminal.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
    class_prior_ : ndarray of shape (n_classes,)
        Relative class frequencies of the training labels.
    autoencoder_, generator_, critic_, classifier_ : torch.nn.Module
        The trained networks (on the CPU).
    history_ : list of dict
        Per iteration: the critic's, generator's and classifier's mean losses.
    input_shape_ : tuple
        (channels, height, width) of the training images.

    Raises
    ------
    skgradunc.TrainingDivergedError
        From ``fit``, when a loss becomes NaN or infinite, naming the phase, network
        and iteration.

    Examples
    --------
    >>> from skgradunc import UQGANClassifier
    >>> from skgradunc.datasets import load_digits28
    >>> X, y = load_digits28(return_X_y=True)
    >>> uqgan = UQGANClassifier(cae_epochs=1, iterations=2, batch_size=32,
    ...                         random_state=0, verbose=False).fit(X[:200], y[:200] % 3)
    >>> uqgan.predict_uncertainty(X[:2]).shape
    (2, 2)
    """

    def __init__(self, *, latent_dim=32, noise_dim=128, cae_epochs=200, cae_lr=1e-3,
                 iterations=2000, critic_iterations=5, classifier_iterations=5,
                 lambda_gp=10.0, lambda_cl=2.0, lambda_reg=32.0, lambda_real_ood=0.6,
                 gan_lr=1e-4, gan_min_lr=1e-5, classifier_lr=1e-3, classifier_min_lr=1e-4,
                 batch_size=256, device="auto", random_state=None, verbose=True):
        self.latent_dim = latent_dim
        self.noise_dim = noise_dim
        self.cae_epochs = cae_epochs
        self.cae_lr = cae_lr
        self.iterations = iterations
        self.critic_iterations = critic_iterations
        self.classifier_iterations = classifier_iterations
        self.lambda_gp = lambda_gp
        self.lambda_cl = lambda_cl
        self.lambda_reg = lambda_reg
        self.lambda_real_ood = lambda_real_ood
        self.gan_lr = gan_lr
        self.gan_min_lr = gan_min_lr
        self.classifier_lr = classifier_lr
        self.classifier_min_lr = classifier_min_lr
        self.batch_size = batch_size
        self.device = device
        self.random_state = random_state
        self.verbose = verbose

    # -- checks -----------------------------------------------------------------------------
    def _check_params(self):
        for name in ("latent_dim", "noise_dim", "cae_epochs", "iterations", "critic_iterations",
                     "classifier_iterations"):
            check_positive_int(getattr(self, name), name)
        # the generator's BatchNorm needs two samples a batch
        check_number(self.batch_size, "batch_size", lambda v: is_int(v) and v >= 2,
                     "an integer of at least 2 (the generator's BatchNorm needs two samples)")
        for name in ("cae_lr", "gan_lr", "classifier_lr"):
            check_positive_real(getattr(self, name), name)
        for name, top in (("gan_min_lr", "gan_lr"), ("classifier_min_lr", "classifier_lr")):
            check_number(getattr(self, name), name,
                         lambda v, t=getattr(self, top): is_finite_real(v) and 0 < v <= t,
                         f"a positive number at most {top} ({getattr(self, top)})")
        for name in ("lambda_gp", "lambda_cl", "lambda_reg"):
            check_number(getattr(self, name), name, lambda v: is_finite_real(v) and v >= 0,
                         "a non-negative number")
        check_number(self.lambda_real_ood, "lambda_real_ood",
                     lambda v: is_finite_real(v) and 0 <= v <= 1, "a number in [0, 1]")
        check_number(self.random_state, "random_state", lambda v: v is None or is_int(v),
                     "None or an integer (it seeds torch)")
        return check_device(self.device)

    # -- training ---------------------------------------------------------------------------
    def fit(self, X, y):
        """Train the auto-encoder, then the GAN and the classifier together.

        Parameters
        ----------
        X : array-like of shape (n_samples, channels, height, width)
            Images in [0, 1] (uint8 is scaled); height and width divisible by 4, at
            least 16.
        y : array-like of shape (n_samples,)
            Class labels of any type (integers, strings, ...); ``classes_`` are the
            sorted labels seen, one output each.

        Returns
        -------
        self : UQGANClassifier
            The fitted estimator.
        """
        device = self._check_params()
        X = check_images(X)
        classes, y = encode_labels(y, len(X))
        n_classes = len(classes)
        if n_classes < 2:
            raise ValueError(f"y holds a single class ({classes[0]!r}); need at least two")
        if len(X) < self.batch_size:
            raise ValueError(f"fit got {len(X)} samples, fewer than batch_size="
                             f"{self.batch_size}: every step takes one full batch")
        counts = np.bincount(y, minlength=n_classes)
        rng = np.random.RandomState(self.random_state)
        with seeded_torch(self.random_state):
            training = UQGANTraining(self)
            networks = training.build(n_classes, X.shape[1:], device)
            data = (torch.tensor(X, device=device), torch.tensor(y, device=device))
            training.train_autoencoder(networks["autoencoder"], data, n_classes, rng)
            history = training.train_jointly(networks, data, counts, rng)
        # set together, after training: a failed refit leaves the previous fit whole
        self.classes_, self.class_prior_ = classes, counts / counts.sum()
        self.input_shape_, self.history_, self.n_iter_ = tuple(X.shape[1:]), history, len(history)
        for name, network in networks.items():
            setattr(self, f"{name}_", network.cpu().eval())
        return self

    # -- outputs ----------------------------------------------------------------------------
    def _one_vs_all_probabilities(self, X):
        check_is_fitted(self, "classifier_")
        X = check_images(X, self.input_shape_)
        device = check_device(self.device)
        classifier = self.classifier_.to(device).eval()
        try:
            with torch.no_grad():
                # in float64: float32 saturates confident samples to exactly 1 (ties)
                parts = [classifier(torch.from_numpy(X[i:i + PREDICT_BATCH]).to(device))
                         .double().sigmoid().cpu() for i in range(0, len(X), PREDICT_BATCH)]
        finally:
            self.classifier_ = classifier.cpu()
        return torch.cat(parts).numpy()

    def sample_out_of_class(self, y, random_state=None):
        """Images the generator makes for classes ``y``: out-of-class examples near each
        class, the ones the classifier learnt to reject (decoded by the auto-encoder).

        Parameters
        ----------
        y : array-like of shape (n_samples,)
            The class of each image to generate, among ``classes_``.
        random_state : int or None, default=None
            Seeds the generator's noise; None draws it from torch's global generator.

        Returns
        -------
        images : ndarray of float32, shape (n_samples, channels, height, width)
            One decoded image per entry of ``y``, values in [0, 1] (sigmoid of the
            decoder's output).
        """
        check_is_fitted(self, "generator_")
        y = torch.from_numpy(encode_labels(y, len(y), self.classes_)[1])
        generator = None if random_state is None else torch.Generator().manual_seed(
            int(random_state))
        noise = torch.rand(len(y), self.noise_dim, generator=generator)
        y_onehot = one_hot(y, len(self.classes_))
        with torch.no_grad():
            codes = self.generator_.eval()(y_onehot, noise)
            return torch.sigmoid(self.autoencoder_.decode(codes, y_onehot)).numpy()
