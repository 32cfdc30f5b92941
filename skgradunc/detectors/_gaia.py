"""GAIA (Chen et al., NeurIPS 2023): gradient abnormality of the attributions at inner
feature maps, as the authors' ``cal_method.py`` (JGEthanChen/GAIA-OOD, 91c287c)
computes it."""

import torch

from ._on_activations import ActivationDetector, spatial_mean

__all__ = ["GAIADetector"]

VARIANTS = ("A", "Z")


def _sum_log_softmax(logits, taps):
    return torch.log_softmax(logits, dim=1).sum(dim=1)


def _max_logit(logits, taps):
    return logits.max(dim=1).values


class GAIADetector(ActivationDetector):
    """GAIA's scores of inputs (Chen et al. 2023), in scikit-learn's outlier convention.

    GAIA-A (``variant="A"``, the authors' ``cal_grad_value``): with ``h`` the output of
    the last layer in ``layers`` (the feature map before the head) and ``a_l`` the
    outputs of the others,

    * the output component c(x) = sqrt(mean over channels c of the absolute value of
      mean over positions of d(sum_k log p_k) / d h_c),
    * the inner components d(sum h) / d a_l, averaged over each channel's positions and
      joined over the inner layers into one vector v(x) of channels,

    and the abnormality is the mean over channels c of (abs(v_c(x)) / c(x))^2.

    GAIA-Z (``variant="Z"``, the authors' ``cal_zero``): the gradient of the maximum
    logit at each layer in ``layers``; per channel the fraction of positions where it is
    non-zero; joined over the layers, squared and averaged.

    Both abnormalities are higher for outliers; ``score_samples`` is their negative
    (higher = more typical; the authors negate them as well). Nothing is learned but the
    threshold ``offset_``: ``fit`` computes the training inputs' scores for it.

    The authors tap the normalisation layers of ResNets (the inputs to the ReLUs) for
    GAIA-Z and for GAIA-A's inner layers, and ``layer4`` as the map before the head; for
    a network without normalisation layers the convolutions' outputs play that part. A
    (n, C) output (a linear layer) has no positions: its mean over them is itself.

    Parameters
    ----------
    estimator : fitted skorch net, torch.nn.Module or FrozenEstimator
        The classifier, as for :class:`~skgradunc.GradientMetricTransformer`.
    layers : list of str
        Names of the tapped modules (``module.named_modules()``), channels first; for
        GAIA-A the last one is the map before the head and at least one more is needed.
    variant : {"A", "Z"}, default="A"
        GAIA-A (gradient values) or GAIA-Z (zero counts).
    tpr : float, default=0.95
        Fraction of the training inputs ``predict`` keeps as in-distribution.
    batch_size : int, default=256
        Inputs per chunk.
    device : str, default="auto"
        Where the network runs (``"auto"``: CUDA when available).
    output : {"auto", "logits", "probabilities", "log_probabilities"}, default="auto"
        What the module returns.

    Attributes
    ----------
    layers_ : list of str
        The tapped layers.
    offset_ : float
        The threshold on ``score_samples``.
    layer_shapes_ : list of tuple
        The shape of each layer's output for one input.
    n_samples_fit_ : int
        Inputs seen in ``fit``.
    input_shape_ : tuple
        The shape of one input.

    Examples
    --------
    >>> import torch
    >>> from skgradunc.detectors import GAIADetector
    >>> net = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.ReLU(),
    ...                           torch.nn.Conv2d(4, 4, 3), torch.nn.ReLU(),
    ...                           torch.nn.Flatten(), torch.nn.Linear(4 * 4 * 4, 3))
    >>> X = torch.randn(20, 1, 8, 8).numpy()
    >>> gaia = GAIADetector(net, layers=["0", "3"], device="cpu").fit(X)
    >>> gaia.score_samples(X).shape
    (20,)
    """

    def __init__(self, estimator, *, layers, variant="A", tpr=0.95, batch_size=256,
                 device="auto", output="auto"):
        self.estimator = estimator
        self.layers = layers
        self.variant = variant
        self.tpr = tpr
        self.batch_size = batch_size
        self.device = device
        self.output = output

    def _check_params(self):
        if self.variant not in VARIANTS:
            raise ValueError(f"variant must be one of {VARIANTS}, got {self.variant!r}")

    def _layers(self):
        layers = super()._layers()
        if self.variant == "A" and len(layers) < 2:
            raise ValueError("GAIA-A needs inner layers and the map before the head (the "
                             f"last of layers); got only {layers}")
        return layers

    def _losses(self):
        if self.variant == "Z":
            return [_max_logit]
        head = self.layers_[-1]
        return [_sum_log_softmax, lambda logits, taps: taps[head].output.flatten(1).sum(1)]

    def _reduce(self, logits, taps):
        if self.variant == "Z":
            counts = [spatial_mean((taps[name].gradients[0] != 0).to(torch.float64))
                      for name in self.layers_]
            return torch.cat(counts, dim=1).pow(2).mean(dim=1, keepdim=True)
        head = taps[self.layers_[-1]].gradients[0].to(torch.float64)
        output = spatial_mean(head).abs().mean(dim=1, keepdim=True).sqrt()
        inner = torch.cat([spatial_mean(taps[name].gradients[1].to(torch.float64))
                           for name in self.layers_[:-1]], dim=1).abs()
        return (inner / output).pow(2).mean(dim=1, keepdim=True)

    def _fit_reduced(self, reduced):
        return self._score_reduced(reduced)

    def _score_reduced(self, reduced):
        return -reduced[:, 0]
