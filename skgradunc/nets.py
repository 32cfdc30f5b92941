"""Torch modules: the convolutional network of Oberdiek et al. (2018)."""

import torch
from torch import nn

__all__ = ["PaperCNN"]


def _as_pair(image_size):
    if isinstance(image_size, int):
        return (image_size, image_size)
    height, width = (int(s) for s in image_size)
    return (height, width)


class PaperCNN(nn.Module):
    """The paper's CNN: three 3x3 convolutions with 16 filters and a dense layer.

    Layout (section 3 of the paper)::

        conv1 -> LeakyReLU(0.1) -> 2x2 max-pool -> dropout(0.33)
        conv2 -> LeakyReLU(0.1) -> 2x2 max-pool
        conv3 -> dropout(0.33)          (the paper gives conv3 no activation)
        flatten -> dense                (logits; softmax lives in the loss)

    Weights are Glorot-uniform and biases zero, as in Keras (the paper's
    framework). With PyTorch's default initialisation the paper's learning
    rate of 0.1 diverges from the first epoch.

    Parameters
    ----------
    in_channels : int, default=1
        Channels of the input images.
    image_size : int or (int, int), default=28
        Height and width of the input images.
    n_classes : int, default=10
        Number of output logits.
    padding : {"same", "valid"}, default="same"
        Padding of the convolutions. The paper does not say; "valid" is
        Keras' default. Both train.
    dropout : float, default=0.33
        Dropout rate after conv1 and conv3.
    negative_slope : float, default=0.1
        Slope of the LeakyReLU for negative inputs.

    Attributes
    ----------
    conv1, conv2, conv3 : torch.nn.Conv2d
    dense : torch.nn.Linear
        Named layers; gradient features are named after them
        (``conv1__l2``, ``dense__max``...).

    Examples
    --------
    >>> import torch
    >>> from skgradunc.nets import PaperCNN
    >>> net = PaperCNN(in_channels=1, image_size=28, n_classes=10)
    >>> net(torch.zeros(2, 1, 28, 28)).shape
    torch.Size([2, 10])
    """

    def __init__(self, in_channels=1, image_size=28, n_classes=10, padding="same",
                 dropout=0.33, negative_slope=0.1):
        super().__init__()
        if padding not in ("same", "valid"):
            raise ValueError(f"padding must be 'same' or 'valid', got {padding!r}")
        if int(in_channels) < 1 or int(n_classes) < 2:
            raise ValueError(
                f"need in_channels >= 1 and n_classes >= 2, got in_channels={in_channels}, "
                f"n_classes={n_classes}")
        self.input_shape = (int(in_channels), *_as_pair(image_size))
        feature_hw = self._feature_size(self.input_shape[1:], padding)
        self.conv1 = nn.Conv2d(in_channels, 16, 3, padding=padding)
        self.conv2 = nn.Conv2d(16, 16, 3, padding=padding)
        self.conv3 = nn.Conv2d(16, 16, 3, padding=padding)
        self.dense = nn.Linear(16 * feature_hw[0] * feature_hw[1], int(n_classes))
        self.activation = nn.LeakyReLU(negative_slope)
        self.pool = nn.MaxPool2d(2)
        self.dropout = nn.Dropout(dropout)
        self.reset_parameters()

    @staticmethod
    def _feature_size(hw, padding):
        """Spatial size after conv-pool-conv-pool-conv; refuse images too small."""
        shrink = 0 if padding == "same" else 2
        size = []
        for s in hw:
            s = (s - shrink) // 2
            s = (s - shrink) // 2
            s = s - shrink
            size.append(s)
        if min(size) < 1:
            smallest = 4 if padding == "same" else 10
            raise ValueError(
                f"image size {tuple(hw)} is too small for PaperCNN with padding={padding!r}: "
                f"two 2x2 poolings need at least {smallest}x{smallest} pixels")
        return tuple(size)

    def reset_parameters(self):
        """Keras' defaults: Glorot-uniform weights, zero biases."""
        for layer in (self.conv1, self.conv2, self.conv3, self.dense):
            nn.init.xavier_uniform_(layer.weight)
            nn.init.zeros_(layer.bias)

    def forward(self, x):
        """Compute the class logits of a batch of images.

        Parameters
        ----------
        x : torch.Tensor of shape (n_samples, in_channels, height, width)
            The images; their last three dimensions must match ``in_channels`` and
            ``image_size``.

        Returns
        -------
        logits : torch.Tensor of shape (n_samples, n_classes)
            Unnormalised class scores (softmax lives in the loss).

        Raises
        ------
        ValueError
            When the images' shape is not the one the network was built for.
        """
        if tuple(x.shape[-3:]) != self.input_shape:
            raise ValueError(
                f"PaperCNN expects images of shape (channels, height, width) = "
                f"{self.input_shape}, got {tuple(x.shape[-3:])}")
        x = self.dropout(self.pool(self.activation(self.conv1(x))))
        x = self.pool(self.activation(self.conv2(x)))
        x = self.dropout(self.conv3(x))
        return self.dense(torch.flatten(x, start_dim=-3))
