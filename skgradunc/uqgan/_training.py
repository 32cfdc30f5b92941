"""UQGAN's training, as the authors' ``uqgan.py`` runs it: the conditional auto-encoder,
then the WGAN-GP critic, the generator and the one-vs-all classifier step by step."""

import numpy as np
import torch
from torch.nn import functional as F
from tqdm.auto import tqdm

from ..callbacks import TrainingDivergedError
from ._losses import (angular_diversity, generated_loss, gradient_penalty, negative_weights,
                      one_vs_all_loss)
from ._networks import ConditionalAutoEncoder, LatentCritic, LatentGenerator, LeNet5, one_hot

__all__ = ["UQGANTraining", "refuse_non_finite"]


class UQGANTraining:
    """The training of a :class:`~skgradunc.UQGANClassifier` with its ``settings`` (the
    estimator, whose parameters are read, never changed)."""

    def __init__(self, settings):
        self.settings = settings

    def build(self, n_classes, shape, device):
        channels, height, width = shape
        networks = {
            "autoencoder": ConditionalAutoEncoder(n_classes, channels, (height, width),
                                                  self.settings.latent_dim),
            "generator": LatentGenerator(n_classes, self.settings.latent_dim,
                                         self.settings.noise_dim),
            "critic": LatentCritic(n_classes, self.settings.latent_dim),
            "classifier": LeNet5(n_classes, channels, (height, width)),
        }
        return {name: network.to(device) for name, network in networks.items()}

    def batches(self, n, rng):
        """Endless shuffled full batches (the authors' drop_last), as index arrays."""
        while True:
            order = rng.permutation(n)
            for start in range(0, n - self.settings.batch_size + 1, self.settings.batch_size):
                yield torch.from_numpy(order[start:start + self.settings.batch_size])

    def train_autoencoder(self, autoencoder, data, K, rng):
        X, y = data
        optimizer = torch.optim.Adam(autoencoder.parameters(), lr=self.settings.cae_lr)
        # the authors' milestones (configs/cae_uqgan): a shorter run keeps lr cae_lr
        schedule = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=[50, 100],
                                                        gamma=0.1)
        steps = len(X) // self.settings.batch_size
        batches = self.batches(len(X), rng)
        autoencoder.train()
        bar = tqdm(range(self.settings.cae_epochs), desc="UQGAN: auto-encoder", unit="epoch",
                   disable=None if self.settings.verbose else True, leave=False)
        for epoch in bar:
            total = 0.0
            for _ in range(steps):
                index = next(batches)
                x, y_onehot = X[index], one_hot(y[index], K)
                loss = F.binary_cross_entropy_with_logits(autoencoder(x, y_onehot), x)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                total += loss.item()
            refuse_non_finite(total, "auto-encoder", f"epoch {epoch + 1}")
            schedule.step()
            bar.set_postfix(loss=f"{total / steps:.4f}")
        autoencoder.eval()
        for parameter in autoencoder.parameters():
            parameter.requires_grad_(False)

    def train_jointly(self, networks, data, counts, rng):
        X, y = data
        K = len(counts)
        names = ("autoencoder", "generator", "critic", "classifier")
        cae, G, D, C = (networks[name] for name in names)
        weights = negative_weights(np.maximum(counts, 1)).to(X.device)
        gan_lr = self.settings.gan_lr
        optimizers = {
            "critic": torch.optim.Adam(D.parameters(), lr=gan_lr, betas=(0.0, 0.9)),
            "generator": torch.optim.Adam(G.parameters(), lr=gan_lr, betas=(0.0, 0.9)),
            "classifier": torch.optim.Adam(C.parameters(), lr=self.settings.classifier_lr),
        }
        ends = {"critic": self.settings.gan_min_lr / self.settings.gan_lr,
                "generator": self.settings.gan_min_lr / self.settings.gan_lr,
                "classifier": self.settings.classifier_min_lr / self.settings.classifier_lr}
        schedules = [torch.optim.lr_scheduler.LinearLR(optimizer, 1.0, ends[name],
                                                       total_iters=self.settings.iterations)
                     for name, optimizer in optimizers.items()]
        batches, history = self.batches(len(X), rng), []
        bar = tqdm(range(self.settings.iterations), desc="UQGAN: GAN + classifier", unit="it",
                   disable=None if self.settings.verbose else True, leave=False)
        for iteration in bar:
            index = next(batches)
            x, labels = X[index], y[index]
            y_onehot = one_hot(labels, K)
            with torch.no_grad():
                codes = cae.encode(x, y_onehot)
            losses = {
                "critic": self.critic_steps(D, G, codes, y_onehot, optimizers["critic"]),
                "generator": self.generator_step(G, D, C, cae, codes, labels, y_onehot,
                                                 optimizers["generator"]),
                "classifier": self.classifier_steps(C, G, cae, x, labels, y_onehot, weights,
                                                    optimizers["classifier"]),
            }
            for name, value in losses.items():
                refuse_non_finite(value, name, f"iteration {iteration + 1}")
            for schedule in schedules:
                schedule.step()
            history.append(losses)
            bar.set_postfix({k: f"{v:.3f}" for k, v in losses.items()})
        return history

    def critic_steps(self, D, G, codes, y_onehot, optimizer):
        G.eval()
        D.train()
        with torch.no_grad():
            fake = G(y_onehot)
        total = 0.0
        for _ in range(self.settings.critic_iterations):
            loss = (D(fake, y_onehot).mean() - D(codes, y_onehot).mean()
                    + self.settings.lambda_gp * gradient_penalty(D, codes, fake, y_onehot))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += loss.item()
        return total / self.settings.critic_iterations

    def generator_step(self, G, D, C, cae, codes, labels, y_onehot, optimizer):
        G.train()
        D.eval()
        C.eval()
        fake = G(y_onehot)
        images = torch.sigmoid(cae.decode(fake, y_onehot))
        loss = (-D(fake, y_onehot).mean()
                + self.settings.lambda_cl * generated_loss(C(images), labels)
                + self.settings.lambda_reg * angular_diversity(codes, fake, labels))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        # only G steps here: the gradients the critic and classifier received are dropped
        D.zero_grad(set_to_none=True)
        C.zero_grad(set_to_none=True)
        return loss.item()

    def classifier_steps(self, C, G, cae, x, labels, y_onehot, weights, optimizer):
        G.eval()
        C.train()
        with torch.no_grad():
            generated = torch.sigmoid(cae.decode(G(y_onehot), y_onehot))
        total = 0.0
        for _ in range(self.settings.classifier_iterations):
            loss = (one_vs_all_loss(C(x), labels, weights, self.settings.lambda_real_ood)
                    + (1 - self.settings.lambda_real_ood) * generated_loss(C(generated), labels))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += loss.item()
        return total / self.settings.classifier_iterations


def refuse_non_finite(value, network, when):
    if not np.isfinite(value):
        raise TrainingDivergedError(
            f"UQGAN training diverged: the {network} loss became {value} in {when}. Lower "
            f"the learning rates or train again with another random_state.")
