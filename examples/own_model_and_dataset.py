"""
Your own network and your own image files
=========================================

Your own image files, your own network: gradient uncertainty on a PyTorch data pipeline.

Nothing here is the package's own model or data format: the images are PNG files read by
torchvision's ``ImageFolder``, the network is a small ``torch.nn.Module`` trained with plain
skorch, and skgradunc reads the torch Datasets as they are (labels from their ``(x, y)``
items, images decoded as the transform makes them, block by block).

Protocol (fixed seeds):

1. write the 1,797 embedded digits as 28x28 grayscale PNGs, ``root/<label>/<i>.png`` (stand-in
   for your own folder of images), and read them with ``ImageFolder(root, transform=...)``;
2. split the indices (stratified): 1,000 to train the network, 500 for the meta classifier,
   297 to test; each part a ``torch.utils.data.Subset`` of the one ImageFolder;
3. train a two-convolution CNN with skorch's ``NeuralNetClassifier`` on the training Subset
   (no y: the labels come from the items), 8 epochs of Adam;
4. meta target on the 500 meta digits (1 = prediction correct), labels read from the items;
   ``GridSearchCV`` over the LASSO meta classifier's C on ``SliceDataset(meta part)``
   (3-fold, AUROC), then correct vs wrong AUROC of the best pipeline on the 297 test digits;
5. out of distribution: 200 uniform-noise test images against the test digits, with the meta
   classifier trained (a) on the meta digits only and (b) with 200 *other* noise images
   appended as "known unknowns" (``append_out_of_distribution``: a lazy ConcatDataset, noise
   labelled -1, so target 0).

Run: python examples/own_model_and_dataset.py
"""

import tempfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from sklearn.base import clone
from sklearn.frozen import FrozenEstimator
from sklearn.model_selection import GridSearchCV, train_test_split
from sklearn.pipeline import make_pipeline
from skorch import NeuralNetClassifier
from skorch.helper import SliceDataset
from torch import nn
from torch.utils.data import Subset, TensorDataset
from torchvision import datasets, transforms

import skgradunc as sgu

torch.manual_seed(0)   # the network's initial weights and skorch's shuffling

# 1. image files on disk, read by a torchvision Dataset (your pipeline goes here)
workdir = tempfile.TemporaryDirectory()
root = Path(workdir.name)
X, y = sgu.datasets.load_digits28(return_X_y=True)
for i, (image, label) in enumerate(zip(X, y)):
    (root / str(label)).mkdir(exist_ok=True)
    Image.fromarray(np.round(image[0] * 255).astype(np.uint8)).save(root / f"{label}/{i}.png")
images = datasets.ImageFolder(root, transform=transforms.Compose(
    [transforms.Grayscale(), transforms.ToTensor()]))       # items: (float32 (1, 28, 28), label)

# 2. train / meta / test parts of the one Dataset
train_idx, rest_idx = train_test_split(np.arange(len(images)), train_size=1000,
                                       stratify=images.targets, random_state=0)
meta_idx, test_idx = train_test_split(rest_idx, train_size=500,
                                      stratify=np.asarray(images.targets)[rest_idx],
                                      random_state=0)
train_part, meta_part, test_part = (Subset(images, i) for i in (train_idx, meta_idx, test_idx))


# 3. your own network, trained with plain skorch on the Dataset
class SmallCNN(nn.Module):
    def __init__(self, n_classes=10):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2))
        self.classifier = nn.Linear(16 * 7 * 7, n_classes)

    def forward(self, x):
        return self.classifier(self.features(x).flatten(1))     # logits


net = NeuralNetClassifier(SmallCNN, criterion=nn.CrossEntropyLoss, optimizer=torch.optim.Adam,
                          lr=0.003, max_epochs=8, batch_size=64, train_split=None,
                          iterator_train__shuffle=True, device="cpu", verbose=0)
net.fit(train_part, y=None)                                  # labels from the items
y_test = sgu.correctness_target(net, test_part)              # labels read from the items
print(f"test accuracy {y_test.mean():.3f} ({(y_test == 0).sum()} wrong of {len(y_test)})")

# 4. meta classification on the Dataset: SliceDataset makes it indexable for sklearn's splitters
y_meta = sgu.correctness_target(net, meta_part)
pipe = make_pipeline(sgu.GradientMetricTransformer(FrozenEstimator(net)),
                     sgu.MetaClassifier("lasso", random_state=0))
search = GridSearchCV(pipe, {"metaclassifier__C": [0.1, 1, 10]}, cv=3,
                      scoring=sgu.metrics.scorer("auroc")).fit(SliceDataset(meta_part), y_meta)
print(f"best params {search.best_params_}")
print(f"cross-validated AUROC {search.best_score_:.3f} (correct vs wrong, 3 folds of the "
      f"{len(y_meta)} meta digits)")
confidence_test = search.predict_proba(SliceDataset(test_part))[:, 1]    # P(correct)
print(f"held-out AUROC {sgu.metrics.auroc(y_test, confidence_test):.3f} (correct vs wrong, "
      f"{len(y_test)} test digits)")

# 5. known unknowns: noise appended to the meta digits as a lazy Dataset, labelled -1
noise_known = TensorDataset(torch.from_numpy(sgu.datasets.make_noise(200, random_state=2)))
noise_unseen = TensorDataset(torch.from_numpy(sgu.datasets.make_noise(200, random_state=1)))
X_known, _ = sgu.append_out_of_distribution(meta_part, None, noise_known)   # ConcatDataset
y_known = sgu.correctness_target(net, X_known)       # the noise's label -1 -> target 0
with_unknowns = clone(search.best_estimator_).fit(SliceDataset(X_known), y_known)

is_digit = np.r_[np.ones(len(test_part)), np.zeros(len(noise_unseen))]
for name, meta in (("meta classifier trained on digits only", search.best_estimator_),
                   ("with 200 known unknowns", with_unknowns)):
    confidence = np.r_[meta.predict_proba(SliceDataset(test_part))[:, 1],
                       meta.predict_proba(noise_unseen)[:, 1]]
    print(f"digits vs noise AUROC, {name}: {sgu.metrics.auroc(is_digit, confidence):.3f}")
workdir.cleanup()
