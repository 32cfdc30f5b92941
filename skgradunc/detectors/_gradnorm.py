"""GradNorm (Huang, Geng & Li 2021): the L1 norm of the gradient of
KL(uniform || softmax(z / T)) with respect to the last layer's weight."""

from .._network import find_module
from ..transformer import GradientMetricTransformer

__all__ = ["gradnorm_score", "last_layer_weight"]


def last_layer_weight(module):
    """Name of the last 2-D ``weight`` in the module's parameter order (a classifier's
    last fully connected layer: ``fc.weight``, ``heads.head.weight``), frozen or not:
    GradNorm is defined on the last layer, and gradients can be taken with respect to
    a frozen weight.

    Parameters
    ----------
    module : torch.nn.Module
        The classifier's network.

    Returns
    -------
    str
        The parameter's name, as in ``module.named_parameters()``.

    Raises
    ------
    ValueError
        When the module has no 2-D parameter named ``weight`` (or no parameters at
        all).

    Examples
    --------
    >>> import torch
    >>> from skgradunc.detectors import last_layer_weight
    >>> net = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.Flatten(),
    ...                           torch.nn.Linear(4 * 26 * 26, 10))
    >>> last_layer_weight(net)
    '2.weight'
    """
    found = [name for name, weight in module.named_parameters()
             if name.rsplit(".", 1)[-1] == "weight" and weight.dim() == 2]
    if not found:
        raise ValueError(f"{type(module).__name__} has no 2-D weight (a Linear layer's); "
                         "name the parameter GradNorm takes with parameter=")
    return found[-1]


def gradnorm_score(estimator, X, *, temperature=1.0, parameter=None, batch_size=256,
                   device="auto", output="auto"):
    """GradNorm's score (Huang, Geng & Li 2021) of each sample.

    S(x) = || d KL(u || softmax(f(x) / T)) / d W ||_1, W the last layer's weight:
    ``network``-free, one parameter's L1 norm of the gradient at
    ``target="uniform"`` (the cross-entropy to the uniform distribution differs
    from the KL divergence by a constant). Higher means in-distribution (and,
    as everywhere in this package, more likely correct).

    Parameters
    ----------
    estimator : fitted skorch net, torch.nn.Module or FrozenEstimator
        The classifier, as for :class:`GradientMetricTransformer`.
    X : array-like, tensor, Dataset, SliceDataset or DataLoader
        The samples, as for :meth:`GradientMetricTransformer.transform`.
    temperature : float, default=1.0
        GradNorm's T (their ImageNet experiments use 1).
    parameter : str, optional
        The weight whose gradient is taken; default: :func:`last_layer_weight`.
    batch_size : int, default=256
        Samples per chunk of the gradient computation, as for
        :class:`GradientMetricTransformer`.
    device : str, default="auto"
        Where gradients are computed: ``"auto"`` uses CUDA when available, else the
        CPU (as for :class:`GradientMetricTransformer`).
    output : {"auto", "logits", "probabilities", "log_probabilities"}, default="auto"
        What the module returns, as for :class:`GradientMetricTransformer`.

    Returns
    -------
    scores : ndarray of float64, shape (n_samples,)
        The L1 norm of each sample's gradient; higher means more likely in
        distribution.

    Examples
    --------
    >>> import torch
    >>> from skgradunc.detectors import gradnorm_score
    >>> net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(),
    ...                           torch.nn.Linear(8, 3))
    >>> gradnorm_score(net, torch.randn(5, 4).numpy(), device="cpu").shape
    (5,)
    """
    module = find_module(estimator)   # refuses an unfitted net: GradNorm never trains one
    name = parameter if parameter is not None else last_layer_weight(module)
    features = GradientMetricTransformer(
        estimator, target="uniform", temperature=temperature, groups={"gradnorm": [name]},
        statistics=["l1"], include_network=False, softmax_features=False,
        batch_size=batch_size, device=device, output=output).fit_transform(X)
    return features[:, 0]
