"""One run of the UQGAN protocol: a random validation part of MNIST 0-4's training images,
three classifiers trained on the rest (softmax LeNet-5, one-vs-all LeNet-5, UQGAN), and
every per-image output the tables need, cached stage by stage.

Each stage's file, ``runs/run-NN/<stage>.npz``, holds that classifier's outputs on every
image set (and, for the softmax network, its gradient metrics and GradNorm scores) with
the settings it was made with; a stage already on disk is loaded, not trained again, and
refused when its settings differ. The networks themselves are not kept: the outputs are
what the tables read, and an ``.npz`` never runs code when loaded.
"""

import time
from pathlib import Path

import numpy as np

from ...detectors import gradnorm_score
from ...transformer import GradientMetricTransformer
from ...uqgan import OneVsAllClassifier, UQGANClassifier
from ...uqgan._softmax_baseline import SoftmaxBaseline
from ..cache import load_features, run_identity, save_features
from ..checks import CompletedEpochs, EpochBar, raise_if_interrupted
from ..concepts import KNOWN_UNKNOWN_SIZE
from ..in_distribution import ACTIVATION_OUTPUTS, in_distribution_outputs, timed_outputs

__all__ = ["PRESETS", "STAGES", "VALIDATION_FRACTION", "compute_uqgan_run", "stage_settings",
           "validation_size", "LAYERS"]

# Training budgets. "authors": their MNIST 0-4 configs (200 epochs for the softmax and
# one-vs-all LeNets, 200 auto-encoder epochs, 2,000 UQGAN iterations; minutes on a GPU).
# "cpu": one run in 28 min on 2 CPU cores (measured; docs/uqgan.md: 30 s per auto-encoder
# epoch of 25,500 images, 0.71 s per iteration, ~1.3 s per LeNet epoch); the LeNets
# converge within 30 epochs on MNIST 0-4.
PRESETS = {
    "cpu": {"softmax_epochs": 30, "one_vs_all_epochs": 30, "cae_epochs": 20,
            "iterations": 1500},
    "authors": {"softmax_epochs": 200, "one_vs_all_epochs": 200, "cae_epochs": 200,
                "iterations": 2000},
}
# the part of the training images of 0-4 held out per run: the meta classifiers' training
# set (the authors hold out a validation part as well, to pick checkpoints)
VALIDATION_FRACTION = 1 / 6
STAGES = ("softmax", "one_vs_all", "uqgan")
# what shapes each stage's file besides the stage's own budget and the run's identity
# (the torch threads: float32 training rounds differently with another count)
SHARED_SETTINGS = ("data", "root", "seed", "ood_size", "threads")


# what the softmax stage's file holds, recorded with it: a file of before (no training
# images' features, logits, ExGrad, NAC-UE, GAIA or costs; issue 27) is refused on resume
SOFTMAX_OUTPUTS = ("proba", "features", "gradnorm", "train__features", *ACTIVATION_OUTPUTS,
                   "cost")
# The detectors on the LeNet-5's layers, as their authors set them on ResNets: NAC-UE on
# the penultimate features (the ReLU after the second fully connected layer; ResNet's
# avgpool) with the authors' CIFAR-10 setting, fitted on 1,000 class-balanced training
# images (and with alpha="auto", set from those images: the authors' alpha = 100 suits
# ResNet-18's features, not the LeNet's); GAIA's inner layers are the convolutions, whose
# outputs feed ReLUs (ResNet's normalisation layers), and the map before the head is the
# last pooled feature map (ResNet's layer4).
LAYERS = {"nac": ["head.3"], "gaia_a": ["features.0", "features.3", "features.5"],
          "gaia_z": ["features.0", "features.3"]}


def stage_settings(config, stage, run):
    """The settings the cached file of run ``run``'s ``stage`` must have been made with
    (``config`` resolved), its run's number and seed among them."""
    budget = PRESETS[config.preset]
    own = {"softmax": ("softmax_epochs",), "one_vs_all": ("one_vs_all_epochs",),
           "uqgan": ("cae_epochs", "iterations")}[stage]
    outputs = {"softmax": {"outputs": SOFTMAX_OUTPUTS}}.get(stage, {})
    return {"protocol": "uqgan", "stage": stage, **outputs,
            **{key: getattr(config, key) for key in SHARED_SETTINGS},
            **run_identity(config, run),
            "validation_fraction": VALIDATION_FRACTION,
            "known_unknown_size": KNOWN_UNKNOWN_SIZE,
            **{key: budget[key] for key in own}}


def validation_size(n):
    """The validation images a run holds out of ``n`` training images of 0-4."""
    return int(round(VALIDATION_FRACTION * n))


def _split(n, run_seed):
    """Train and validation indices of the training images of 0-4."""
    order = np.random.RandomState(run_seed).permutation(n)
    n_validation = validation_size(n)
    return order[n_validation:], order[:n_validation]


def _callbacks(description):
    return [("progress", EpochBar(description)), ("completed_epochs", CompletedEpochs())]


def _softmax(config, train, sets, run_seed, description):
    net = SoftmaxBaseline(max_epochs=PRESETS[config.preset]["softmax_epochs"],
                          device=config.device, random_state=run_seed, verbose=0,
                          callbacks=_callbacks(description))
    net.fit(*train)
    raise_if_interrupted(net)   # never cache a network cut short by Ctrl-C
    common = {"batch_size": config.batch_size, "device": config.device}
    grad = GradientMetricTransformer(net, statistics="all", groups="layer",
                                     softmax_features=True, **common).fit(train[0][:1])
    arrays = {"columns": np.asarray(grad.get_feature_names_out(), dtype=str),
              # what the in-distribution-only detectors are fitted on: the training images
              "train__features": grad.transform(train[0]), "train__labels": train[1]}
    outputs = {"proba": lambda X: net.predict_proba(X).astype(np.float64),
               "features": grad.transform,
               "gradnorm": lambda X: gradnorm_score(net, X, **common),
               **in_distribution_outputs(net, train, LAYERS, run_seed, **common)}
    return {**arrays, **timed_outputs(outputs, sets)}


def _one_vs_all_outputs(model, sets):
    """P(class | x) and P(in distribution | x) of a one-vs-all model on every set."""
    arrays = {}
    for name, X in sets.items():
        arrays[f"{name}__proba"] = model.predict_proba(X)
        arrays[f"{name}__p_in"] = model.score_samples(X)
    return arrays


def _one_vs_all(config, train, sets, run_seed, description):
    model = OneVsAllClassifier(max_epochs=PRESETS[config.preset]["one_vs_all_epochs"],
                               device=config.device, random_state=run_seed, verbose=0,
                               callbacks=_callbacks(description))
    model.fit(*train)
    raise_if_interrupted(model)
    return _one_vs_all_outputs(model, sets)


def _uqgan(config, train, sets, run_seed, description):
    budget = PRESETS[config.preset]
    model = UQGANClassifier(cae_epochs=budget["cae_epochs"], iterations=budget["iterations"],
                            device=config.device, random_state=run_seed)
    model.fit(*train)   # a Ctrl-C propagates: nothing of the stage is cached
    arrays = _one_vs_all_outputs(model, sets)
    for key in model.history_[0]:
        arrays[f"history__{key}"] = np.array([row[key] for row in model.history_])
    return arrays


TRAINERS = {"softmax": _softmax, "one_vs_all": _one_vs_all, "uqgan": _uqgan}


def _stage(folder, stage, config, run, compute, log):
    path = folder / f"{stage}.npz"
    settings = stage_settings(config, stage, run)
    if path.exists():
        return load_features(path, settings)
    start = time.perf_counter()
    arrays = compute()
    arrays["seconds"] = np.float64(time.perf_counter() - start)
    save_features(path, arrays, settings)
    log(f"{folder.name}: {stage} done in {arrays['seconds']:.0f} s")
    return arrays


def compute_uqgan_run(config, data, run, log=print):
    """Every stage's arrays of run ``run`` as ``{stage: arrays}``, plus ``"split"``: the
    validation labels and the rows of each known-unknown concept held out for the
    meta classifiers' training (``known__<concept>``).

    ``config`` is resolved. Run ``run`` seeds its split, its networks and its known-unknown
    rows with ``config.seed + run``.
    """
    folder = Path(config.out) / "runs" / f"run-{run + 1:02d}"
    run_seed = config.seed + run
    train, validation = _split(len(data.X_train), run_seed)
    training = (data.X_train[train], data.y_train[train])
    sets = {"validation": data.X_train[validation], "test": data.X_test, **data.ood}
    rng = np.random.RandomState(run_seed)
    split = {"y_validation": data.y_train[validation], "y_test": data.y_test}
    for concept in data.known_unknowns:  # disjoint from the rows the concept is scored on
        split[f"known__{concept}"] = rng.choice(
            len(data.ood[concept]), min(KNOWN_UNKNOWN_SIZE, len(data.ood[concept]) // 2),
            replace=False)
    out = {"split": split}
    for stage in STAGES:
        description = f"run {run + 1}: {stage.replace('_', '-')}"
        stage_sets = sets if stage == "softmax" else {k: v for k, v in sets.items()
                                                      if k != "validation"}
        out[stage] = _stage(folder, stage, config, run,
                            lambda: TRAINERS[stage](config, training, stage_sets, run_seed,
                                                    description), log)
    return out
