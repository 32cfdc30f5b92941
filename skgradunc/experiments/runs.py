"""One run of the protocol: a random re-split, a CNN, and every feature matrix, cached."""

from pathlib import Path

import numpy as np
from skorch.callbacks import Callback
from tqdm.auto import tqdm

from ..classifier import CNNClassifier
from ..targets import correctness_target
from ..training import fit_with_recovery
from ..transformer import GradientMetricTransformer
from .cache import (FEATURES_FILE, NETWORK_FILE, load_features, load_network,
                    refuse_pickled_network, save_features, save_network)
from .checks import CompletedEpochs, raise_if_interrupted

__all__ = ["compute_run", "run_settings", "RUN_SETTINGS", "NETWORK_SETTINGS",
           "KNOWN_UNKNOWN_SIZE",
           "TARGET_STATISTICS", "NETWORK_FILE", "load_network"]

# what shapes a run's cached files (resolved values); the number of runs and the device
# may change on resume. The network depends only on the first six: a new --ood-size or
# --batch-size (of the extraction) recomputes the features, not the training.
RUN_SETTINGS = ("data", "root", "seed", "split", "epochs", "lr", "batch_size", "ood_size")
NETWORK_SETTINGS = RUN_SETTINGS[:6]

KNOWN_UNKNOWN_SIZE = 200      # the paper's "200 uniform noise images", per concept
# the extra targets need only the norms their papers use (Lee & AlRegib: L2, GradNorm: L1)
TARGET_STATISTICS = {"predicted": "all", "all_ones": ["l1", "l2"], "uniform": ["l1", "l2"]}
# what the targets' losses are, recorded with the features: features of an older
# definition (all_ones by per-class sigmoids, before issue 13) are refused on resume
TARGET_DEFINITIONS = {"all_ones": "softmax"}
CHUNK = 4096                  # samples per progress-bar step


class EpochBar(Callback):
    """A progress bar over training epochs."""

    def __init__(self, description):
        self.description = description

    def on_train_begin(self, net, **kwargs):
        self.bar = tqdm(total=net.max_epochs, desc=self.description, unit="epoch", leave=False,
                        disable=None)  # no bar when stderr is a file or pipe

    def on_epoch_end(self, net, **kwargs):
        row = net.history[-1]
        self.bar.set_postfix(loss=f"{row['train_loss']:.3f}",
                             acc=f"{row.get('valid_acc', float('nan')):.3f}")
        self.bar.update()

    def on_train_end(self, net, **kwargs):
        self.bar.close()
        self.bar = None  # a closed bar is of no use to the trained net


def split_indices(n, proportions, rng):
    """Train / validation / test indices in the given proportions (test takes the rest)."""
    order = rng.permutation(n)
    n_train = int(round(proportions[0] * n))
    n_val = int(round(proportions[1] * n))
    return order[:n_train], order[n_train:n_train + n_val], order[n_train + n_val:]


def run_settings(config, keys=RUN_SETTINGS):
    """The settings a run's cached files must have been made with (``config`` resolved);
    ``keys=NETWORK_SETTINGS`` for its network."""
    settings = {key: getattr(config, key) for key in keys}
    settings["split"] = [float(v) for v in settings["split"]]
    if keys == RUN_SETTINGS:
        settings["targets"] = dict(TARGET_DEFINITIONS)
    return settings


def _train(config, data, run, X_train, y_train, log):
    net = CNNClassifier(lr=config.lr, max_epochs=config.epochs,
                        batch_size=data.batch_size, device=config.device,
                        random_state=config.seed + run, verbose=0,
                        callbacks=[("progress", EpochBar(f"run {run + 1}: training")),
                                   ("completed_epochs", CompletedEpochs())])
    fitted, attempts = fit_with_recovery(net, X_train, y_train, retries=2, log=log)
    raise_if_interrupted(fitted)  # never cache a network cut short by Ctrl-C
    return fitted, attempts


def _features(net, X, target, config, bar):
    grad = GradientMetricTransformer(net, target=target, statistics=TARGET_STATISTICS[target],
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
    settings and is refused when they differ from ``config``'s.
    """
    folder = Path(config.out) / "runs" / f"run-{run + 1:02d}"
    settings, trained_with = run_settings(config), run_settings(config, NETWORK_SETTINGS)
    features_file = folder / FEATURES_FILE
    if features_file.exists():
        return load_features(features_file, settings)
    refuse_pickled_network(folder)
    rng = np.random.RandomState(config.seed + run)
    train, val, test = split_indices(len(data.X), config.split, rng)
    net_file = folder / NETWORK_FILE
    if net_file.exists():
        net, attempts = load_network(net_file, trained_with, device=config.device)
        log(f"run {run + 1}: loaded the trained network from {net_file}")
    else:
        net, attempts = _train(config, data, run, data.X[train], data.y[train], log)
        save_network(net_file, net, attempts, trained_with)
    sets = {"validation": data.X[val], "test": data.X[test], **data.ood}
    arrays = {"y_validation": correctness_target(net, data.X[val], data.y[val]),
              "y_test": correctness_target(net, data.X[test], data.y[test]),
              "lr": np.float64(attempts[-1]["lr"]), "diverged_attempts": np.int64(
                  sum(a["diverged"] for a in attempts))}
    for concept in data.known_unknowns:  # disjoint from the rows the concept is scored on
        arrays[f"known__{concept}"] = rng.choice(len(data.ood[concept]),
                                                 min(KNOWN_UNKNOWN_SIZE,
                                                     len(data.ood[concept]) // 2),
                                                 replace=False)
    total = sum(len(X) for X in sets.values()) * len(TARGET_STATISTICS)
    with tqdm(total=total, desc=f"run {run + 1}: gradient metrics", unit="img",
              leave=False, disable=None) as bar:
        for name, X in sets.items():
            for target in TARGET_STATISTICS:
                F, columns = _features(net, X, target, config, bar)
                arrays[f"{name}__{target}"] = F
                arrays[f"columns__{target}"] = columns
    save_features(features_file, arrays, settings)
    log(f"run {run + 1}: accuracy {arrays['y_test'].mean():.2%} on {len(test)} test images, "
        f"lr {attempts[-1]['lr']:g}")
    return arrays
