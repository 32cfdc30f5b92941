"""One run of the protocol: a random re-split, a CNN, and every feature matrix, cached."""

import time
from pathlib import Path

import numpy as np
from skorch.dataset import Dataset
from skorch.helper import predefined_split
from tqdm.auto import tqdm

from ..._validation import check_images
from ...classifier import CNNClassifier
from ...detectors import last_layer_weight
from ...targets import correctness_target
from ...training import fit_with_recovery
from ...transformer import GradientMetricTransformer
from ..cache import (FEATURES_FILE, NETWORK_FILE, load_features, load_network,
                     refuse_pickled_network, run_identity, save_features, save_network)
from ..checks import CompletedEpochs, EpochBar, raise_if_interrupted
from ..concepts import KNOWN_UNKNOWN_SIZE
from ..in_distribution import ACTIVATION_OUTPUTS, in_distribution_outputs, timed_outputs

__all__ = ["compute_run", "run_settings", "split_indices", "split_sizes", "RUN_SETTINGS",
           "NETWORK_SETTINGS", "TARGET_FEATURES"]

# what shapes a run's cached files (resolved values, the run's identity and TRAINING); the
# number of runs and the device may change on resume. The torch threads are among them:
# float32 training (and extraction) rounds differently with another count. The network
# depends only on NETWORK_SETTINGS: a new --ood-size or --batch-size (of the extraction)
# recomputes the features, not the training.
NETWORK_SETTINGS = ("data", "root", "seed", "split", "epochs", "lr", "threads")
RUN_SETTINGS = NETWORK_SETTINGS + ("batch_size", "ood_size")

# The paper's features per layer at the predicted class; the other two targets need only
# the norms their papers use, per parameter tensor (Lee & AlRegib: the L2 norm of each
# weight and bias; GradNorm: the L1 norm of the last layer's weight) and network-wide.
TARGET_FEATURES = {"predicted": {"statistics": "all", "groups": "layer"},
                   "all_ones": {"statistics": ["l1", "l2"], "groups": "parameter"},
                   "uniform": {"statistics": ["l1", "l2"], "groups": "parameter"}}
# what the targets' features are, recorded with them: features of an older definition
# (all_ones by per-class sigmoids, or per layer, before issue 13) are refused on resume
TARGET_DEFINITIONS = {"all_ones": "softmax", "features": TARGET_FEATURES,
                      # issue 27: the training images' gradient metrics and the detectors
                      # fitted on nothing or on training images alone (features of before
                      # are refused)
                      "in_distribution": ("train__predicted", *ACTIVATION_OUTPUTS, "cost")}
# PaperCNN's layers for the activation-gradient detectors: its last convolution is the map
# before the dense head (its shared activation and dropout run more than once a forward);
# GAIA's inner layers are the convolutions (the authors' ResNets: normalisation layers)
LAYERS = {"nac": ["conv3"], "gaia_a": ["conv1", "conv2", "conv3"], "gaia_z": ["conv1", "conv2"]}
CHUNK = 4096                  # samples per progress-bar step
# How the CNNs train, recorded with every cached file. As in the paper, the learning-rate
# schedule watches the accuracy on the run's validation set (the meta classifiers'
# training set), and the network trains on every training image; the rate drops tenfold
# after two epochs without a new best validation accuracy (lr_patience 1: with patience 3
# a 15-epoch MNIST run may never drop it, and ends on the noisy lr 0.1 weights). At the
# paper's lr 0.1 about 3 in 10 seeds diverge within the first 30 batches (measured on
# 50,000 MNIST digits); such a start is drawn again at the same rate with another seed,
# up to four times. Retry seeds step by 1,000,003, more than any number of runs, so that
# no two runs share a network's initialisation (the next seed would be the next run's;
# 2**32 would repeat the first, torch reads seeds modulo 2**32); config.json lists the
# seed used.
TRAINING = {"schedule_on": "validation set", "lr_patience": 1, "retries": 4,
            "retry_lr_factor": 1.0, "retry_seed_step": 1_000_003}


def split_sizes(n, proportions):
    """The numbers of train, validation and test images of ``n`` split in ``proportions``.

    Each part gets its fraction of ``n``, rounded; the test set never more than the other
    two leave. Fractions that sum to 1 give the test set all that is left, so that
    rounding leaves no image out (the paper's and MNIST's splits: the partition is the
    one of before issue 25, when the test set always took the rest).

    Parameters
    ----------
    n : int
        The number of in-distribution images.
    proportions : sequence of three floats
        Train / validation / test fractions, summing to at most 1.

    Returns
    -------
    sizes : tuple of three int
        ``(n_train, n_validation, n_test)``.

    Examples
    --------
    >>> from skgradunc.experiments.paper.runs import split_sizes
    >>> split_sizes(1797, (0.5, 0.2, 0.1))
    (898, 359, 180)
    >>> split_sizes(70000, (50 / 70, 10 / 70, 10 / 70))
    (50000, 10000, 10000)
    """
    n_train = min(int(round(proportions[0] * n)), n)
    n_val = min(int(round(proportions[1] * n)), n - n_train)
    left = n - n_train - n_val
    if abs(sum(proportions) - 1) <= 1e-9:
        return n_train, n_val, left
    return n_train, n_val, min(int(round(proportions[2] * n)), left)


def split_indices(n, proportions, rng):
    """Train / validation / test indices of a random order of ``n`` images, of the sizes
    :func:`split_sizes` gives."""
    order = rng.permutation(n)
    n_train, n_val, n_test = split_sizes(n, proportions)
    return (order[:n_train], order[n_train:n_train + n_val],
            order[n_train + n_val:n_train + n_val + n_test])


def run_settings(config, run, keys=RUN_SETTINGS):
    """The settings run ``run``'s cached files must have been made with (``config``
    resolved); ``keys=NETWORK_SETTINGS`` for its network."""
    settings = {key: getattr(config, key) for key in keys}
    settings["split"] = [float(v) for v in settings["split"]]
    settings.update(run_identity(config, run))
    settings["training"] = dict(TRAINING)
    if keys == RUN_SETTINGS:
        settings["targets"] = dict(TARGET_DEFINITIONS)
    return settings


def _train(config, data, run, train, validation, log):
    net = CNNClassifier(lr=config.lr, max_epochs=config.epochs,
                        batch_size=data.batch_size, device=config.device,
                        random_state=config.seed + run, verbose=0,
                        lr_patience=TRAINING["lr_patience"],
                        train_split=predefined_split(Dataset(check_images(validation[0]),
                                                             validation[1])),
                        callbacks=[("progress", EpochBar(f"run {run + 1}: training")),
                                   ("completed_epochs", CompletedEpochs())])
    fitted, attempts = fit_with_recovery(net, *train, retries=TRAINING["retries"],
                                         lr_factor=TRAINING["retry_lr_factor"],
                                         seed_step=TRAINING["retry_seed_step"], log=log)
    raise_if_interrupted(fitted)  # never cache a network cut short by Ctrl-C
    return fitted, attempts


def _features(net, X, target, config, bar):
    grad = GradientMetricTransformer(net, target=target, **TARGET_FEATURES[target],
                                     softmax_features=target == "predicted",
                                     batch_size=config.batch_size, device=config.device)
    grad.fit(X[:1])
    parts = []
    for start in range(0, len(X), CHUNK):
        parts.append(grad.transform(X[start:start + CHUNK]))
        bar.update(len(parts[-1]))
    return np.concatenate(parts), np.asarray(grad.get_feature_names_out(), dtype=str)


def compute_run(config, data, run, log=print):
    """Features of run ``run``; loaded from ``out/runs/run-NN`` when already computed.

    ``config`` is resolved (no None epochs or lr). The trained network is cached
    first, then the features: an interrupted run resumes from the last file
    written, and every file is complete or absent. Each file records the run's
    settings (with its torch threads, and its number and seed: another run's file is
    refused in its place) and is refused when they differ from ``config``'s.
    """
    folder = Path(config.out) / "runs" / f"run-{run + 1:02d}"
    settings = run_settings(config, run)
    trained_with = run_settings(config, run, NETWORK_SETTINGS)
    features_file = folder / FEATURES_FILE
    rng = np.random.RandomState(config.seed + run)
    train, val, test = split_indices(len(data.X), config.split, rng)
    # the validation images' classes (temperature scaling, issue 28): from the run's split,
    # so that features cached before they were needed stay valid
    labels = {"validation__labels": data.y[val]}
    if features_file.exists():
        return {**load_features(features_file, settings), **labels}
    refuse_pickled_network(folder)
    net_file = folder / NETWORK_FILE
    if net_file.exists():
        net, attempts = load_network(net_file, trained_with, device=config.device)
        log(f"run {run + 1}: loaded the trained network from {net_file}")
    else:
        net, attempts = _train(config, data, run, (data.X[train], data.y[train]),
                               (data.X[val], data.y[val]), log)
        save_network(net_file, net, attempts, trained_with)
    sets = {"validation": data.X[val], "test": data.X[test], **data.ood}
    arrays = {"y_validation": correctness_target(net, data.X[val], data.y[val]),
              "y_test": correctness_target(net, data.X[test], data.y[test]),
              "lr": np.float64(attempts[-1]["lr"]),
              "random_state": np.int64(attempts[-1]["random_state"]),
              "diverged_attempts": np.int64(
                  sum(a["diverged"] for a in attempts)),
              "last_layer_weight": np.array(last_layer_weight(net.module_))}
    for concept in data.known_unknowns:  # disjoint from the rows the concept is scored on
        arrays[f"known__{concept}"] = rng.choice(len(data.ood[concept]),
                                                 min(KNOWN_UNKNOWN_SIZE,
                                                     len(data.ood[concept]) // 2),
                                                 replace=False)
    total = (sum(len(X) for X in sets.values()) * len(TARGET_FEATURES)) + len(train)
    with tqdm(total=total, desc=f"run {run + 1}: gradient metrics", unit="img",
              leave=False, disable=None) as bar:
        seconds = 0.0   # the gradient metrics' cost, over the sets the tables score
        for name, X in {**sets, "train": data.X[train]}.items():
            for target in TARGET_FEATURES if name != "train" else ("predicted",):
                start = time.perf_counter()
                F, columns = _features(net, X, target, config, bar)
                if name != "train" and target == "predicted":
                    seconds += time.perf_counter() - start
                arrays[f"{name}__{target}"] = F
                arrays[f"columns__{target}"] = columns
    arrays["cost__features"] = np.float64(1000 * seconds / sum(len(X) for X in sets.values()))
    arrays["train__labels"] = data.y[train]
    arrays.update(timed_outputs(in_distribution_outputs(
        net, (data.X[train], data.y[train]), LAYERS, config.seed + run,
        batch_size=config.batch_size, device=config.device), sets))
    save_features(features_file, arrays, settings)
    arrays.update(labels)
    log(f"run {run + 1}: accuracy {arrays['y_test'].mean():.2%} on {len(test)} test images, "
        f"lr {attempts[-1]['lr']:g}")
    return arrays
