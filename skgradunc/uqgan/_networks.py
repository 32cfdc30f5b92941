"""UQGAN's networks (Oberdiek, Fink & Rottmann 2022), as the authors' code defines them
for MNIST (github.com/RonMcKay/UQGAN, commit 4050b2f): the one-vs-all LeNet-5, the small
conditional auto-encoder whose latent space the GAN works in, and the conditional WGAN-GP
generator and critic in that latent space.

Layout of the conditioning: a class enters as its one-hot vector, broadcast to K extra
image channels in the encoder and concatenated to the code or noise elsewhere.
"""

import torch
from torch import nn

__all__ = ["LeNet5", "ConditionalAutoEncoder", "LatentGenerator", "LatentCritic",
           "init_gan_weights", "one_hot"]


def one_hot(y, n_classes):
    return nn.functional.one_hot(y.long(), n_classes).float()


def _pair(size):
    """(height, width) from an int or a pair."""
    return (int(size), int(size)) if isinstance(size, (int, float)) else tuple(map(int, size))


def _lenet_features(size):
    """Last feature map of LeNet-5: two 5x5 valid convolutions, two 2x2 poolings."""
    return tuple(((side - 4) // 2 - 4) // 2 for side in _pair(size))


class LeNet5(nn.Module):
    """LeNet-5 with one logit per class (``cls_models/lenet.py``): the authors' one-vs-all
    classifier for MNIST at 32x32. Any size from 16x16 up works (28x28: a 4x4 map)."""

    def __init__(self, n_classes, in_channels=1, image_size=32):
        super().__init__()
        height, width = _lenet_features(image_size)
        if min(height, width) < 1:
            raise ValueError(f"LeNet5 needs images of at least 16x16, got {image_size}")
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 6, 5), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten())
        self.head = nn.Sequential(
            nn.Linear(16 * height * width, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(),
            nn.Linear(84, n_classes))

    def forward(self, x):
        return self.head(self.features(x))


class ConditionalAutoEncoder(nn.Module):
    """The authors' ``SmallCAE`` (``cae_models/small.py``): E(x, y) -> code, Dec(code, y) ->
    image logits; trained with BCE-with-logits against x. Image sides divisible by 4."""

    def __init__(self, n_classes, in_channels=1, image_size=32, latent_dim=32):
        super().__init__()
        height, width = _pair(image_size)
        if height % 4 or width % 4:
            raise ValueError(f"the auto-encoder needs image sides divisible by 4, got "
                             f"{image_size}")
        self.n_classes, self.map = n_classes, (height // 4, width // 4)
        cells = 64 * self.map[0] * self.map[1]
        self.encoder = nn.Sequential(
            nn.Conv2d(in_channels + n_classes, 32, 3, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(32, 64, 3, stride=2, padding=1), nn.ReLU(), nn.Flatten(),
            nn.Linear(cells, latent_dim))
        self.expand = nn.Sequential(nn.Linear(latent_dim + n_classes, cells), nn.ReLU())
        self.decoder = nn.Sequential(
            nn.ConvTranspose2d(64, 32, 3, stride=2, padding=1, output_padding=1), nn.ReLU(),
            nn.ConvTranspose2d(32, 64, 3, stride=2, padding=1, output_padding=1), nn.ReLU(),
            nn.ConvTranspose2d(64, in_channels, 3, stride=1, padding=1))

    def encode(self, x, y_onehot):
        planes = y_onehot[:, :, None, None].expand(-1, -1, x.shape[2], x.shape[3])
        return self.encoder(torch.cat([x, planes], 1))

    def decode(self, code, y_onehot):
        hidden = self.expand(torch.cat([code, y_onehot], 1))
        return self.decoder(hidden.view(-1, 64, *self.map))

    def forward(self, x, y_onehot):
        return self.decode(self.encode(x, y_onehot), y_onehot)


class LatentGenerator(nn.Module):
    """G(y): noise z ~ U(0, 1)^noise_dim and the one-hot class to a latent code
    (``gan_models/toy.py``; BatchNorm after the ReLU, as there)."""

    def __init__(self, n_classes, latent_dim=32, noise_dim=128):
        super().__init__()
        self.noise_dim = noise_dim
        self.net = nn.Sequential(
            nn.Linear(noise_dim + n_classes, 1024), nn.ReLU(), nn.BatchNorm1d(1024),
            nn.Linear(1024, 512), nn.ReLU(), nn.BatchNorm1d(512),
            nn.Linear(512, 256), nn.ReLU(), nn.BatchNorm1d(256),
            nn.Linear(256, latent_dim))
        self.apply(init_gan_weights)

    def forward(self, y_onehot, z=None):
        if z is None:
            z = torch.rand(len(y_onehot), self.noise_dim, device=y_onehot.device)
        return self.net(torch.cat([y_onehot, z], 1))


class LatentCritic(nn.Module):
    """D(code, y): the WGAN critic in latent space, no normalisation."""

    def __init__(self, n_classes, latent_dim=32):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(latent_dim + n_classes, 512), nn.LeakyReLU(),
            nn.Linear(512, 512), nn.LeakyReLU(), nn.Linear(512, 512), nn.LeakyReLU(),
            nn.Linear(512, 1))
        self.apply(init_gan_weights)

    def forward(self, code, y_onehot):
        return self.net(torch.cat([code, y_onehot], 1))


def init_gan_weights(module):
    """``utils.init_gan_weights``: weights N(0, 0.02) (BatchNorm scales N(1, 0.02)),
    biases 0."""
    if isinstance(module, nn.modules.batchnorm._BatchNorm):
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)
    elif isinstance(module, (nn.Linear, nn.Conv2d, nn.ConvTranspose2d)):
        nn.init.normal_(module.weight, 0.0, 0.02)
        nn.init.zeros_(module.bias)
