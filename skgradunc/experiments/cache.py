"""A run's cached files, each carrying the settings it was made with.

The trained network is stored without pickle (a state dict and plain values, read
back with ``torch.load(weights_only=True)``), so a crafted file cannot run code;
the features are an ``.npz`` read with ``allow_pickle=False``. Both hold the run's
settings as a JSON string and are refused when those differ from the current ones.
"""

import io
import json
import warnings

import numpy as np
import torch

from ..classifier import CNNClassifier
from .io import atomic_path, load_arrays, save_arrays

__all__ = ["NETWORK_FILE", "FEATURES_FILE", "LEGACY_NETWORK_FILE", "run_identity", "save_network",
           "load_network", "save_features", "load_features", "check_settings",
           "refuse_pickled_network"]

NETWORK_FILE = "net.pt"
FEATURES_FILE = "features.npz"
LEGACY_NETWORK_FILE = "net.pkl"     # what older versions pickled: never loaded
NETWORK_FORMAT = "skgradunc.run-network.v1"
# what rebuilds the fitted classifier besides its weights
NETWORK_PARAMS = ("lr", "max_epochs", "batch_size", "random_state")


ADVICE = ("delete it (or its run folder) and run the same command again to recompute it, "
          "or choose another --out")


def _reason(exc):
    """The exception's first sentence: one line, and none of numpy's or torch's advice
    to load the file unsafely."""
    sentence = str(exc).strip().split("\n")[0].split(". ")[0].rstrip(".")
    return f"{type(exc).__name__}: {sentence[:100]}" if sentence else type(exc).__name__


def _corrupt(path, exc):
    return ValueError(f"cannot read {path}: it is corrupt or was not written by skgradunc "
                      f"({_reason(exc)}); {ADVICE}")


def _comparable(settings):
    """The settings as JSON gives them back (tuples become lists)."""
    return json.loads(json.dumps(settings))


def check_settings(path, recorded, settings):
    """Refuse a cached file whose recorded settings differ from ``settings``.

    Parameters
    ----------
    path : Path
        The cached file, named in the error.
    recorded : str or None
        The JSON object the file holds; None when it holds none.
    settings : dict
        The current run's settings (:func:`~skgradunc.experiments.paper.runs.run_settings`).

    Raises
    ------
    ValueError
        Naming the file and each setting that differs (then and now; "not recorded" for
        a setting an older skgradunc did not record), or saying that it records none or
        is corrupt, with the advice to delete it.
    """
    if recorded is None:
        raise ValueError(f"{path} records no settings (an older skgradunc wrote it), so it "
                         f"cannot be checked against this command's; {ADVICE}")
    try:
        then = json.loads(recorded)
    except (TypeError, ValueError) as exc:
        raise _corrupt(path, exc) from exc
    if not isinstance(then, dict):
        raise _corrupt(path, ValueError(f"settings {recorded!r} are not a JSON object"))
    now = _comparable(settings)
    changed = [key for key in now if key not in then or then[key] != now[key]]
    if changed:
        differences = ", ".join(
            f"{key}: {repr(then[key]) if key in then else 'not recorded'} then, "
            f"{now[key]!r} now" for key in changed)
        raise ValueError(f"{path} was made with other settings ({differences}); "
                         f"{ADVICE}")


def save_network(path, net, attempts, settings):
    """The trained ``net`` (a fitted CNNClassifier), its attempts and its settings."""
    params = net.get_params(deep=False)
    payload = {
        "format": NETWORK_FORMAT,
        "settings": json.dumps(_comparable(settings)),
        "attempts": json.dumps(attempts),
        "params": json.dumps({key: params[key] for key in NETWORK_PARAMS}),
        "input_shape": [int(v) for v in net.input_shape_],
        "n_classes": int(net.n_classes_),
        "state_dict": {k: v.detach().cpu() for k, v in net.module_.state_dict().items()},
    }
    # serialised in memory, then written as plain bytes: torch.save onto a full disk
    # raises RuntimeError("... unexpected pos ..."), a write says "No space left on device"
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    with atomic_path(path) as temporary:
        temporary.write_bytes(buffer.getbuffer())


def _read(path, load):
    """``load(path)``; a corrupt file is reported by name, a missing or unreadable one as is."""
    try:
        return load(path)
    except (FileNotFoundError, PermissionError, IsADirectoryError, MemoryError):
        raise
    except Exception as exc:  # BadZipFile, EOFError, ValueError, RuntimeError, UnpicklingError...
        raise _corrupt(path, exc) from exc


def _torch_load(path):
    with warnings.catch_warnings():  # a foreign pickle's protocol notice; its error follows
        warnings.filterwarnings("ignore", message="Detected pickle protocol")
        return torch.load(path, map_location="cpu", weights_only=True)


def _read_network(path):
    payload = _read(path, _torch_load)
    if not isinstance(payload, dict) or payload.get("format") != NETWORK_FORMAT:
        raise _corrupt(path, ValueError("not a skgradunc run network"))
    return payload


def _rebuild(payload, device):
    """A fitted CNNClassifier, as ``fit`` leaves it, from the stored weights."""
    net = CNNClassifier(**json.loads(payload["params"]), device=device, verbose=0)
    net.input_shape_ = tuple(payload["input_shape"])  # sizes the module in initialize()
    net.n_classes_ = int(payload["n_classes"])
    net.initialize()
    net.module_.load_state_dict(payload["state_dict"])
    net.classes_inferred_ = np.arange(net.n_classes_)
    return net


def load_network(path, settings, device="auto"):
    """The trained network of a run, rebuilt from :func:`save_network`'s file.

    Parameters
    ----------
    path : Path
    settings : dict
        The run's current settings; the file's must be the same.
    device : str, default="auto"

    Returns
    -------
    net : CNNClassifier
        Fitted, with the stored weights: ``predict``, ``correctness_target`` and
        ``GradientMetricTransformer`` give what the trained network gave.
    attempts : list of dict
        The training attempts, as :func:`~skgradunc.training.fit_with_recovery` returned them.

    Raises
    ------
    ValueError
        When the file is corrupt, not a run network or made with other settings;
        the file is never unpickled beyond ``torch.load(weights_only=True)``.
    """
    payload = _read_network(path)
    check_settings(path, payload.get("settings"), settings)
    try:
        return _rebuild(payload, device), json.loads(payload["attempts"])
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:  # incomplete or altered
        raise _corrupt(path, exc) from exc


def refuse_pickled_network(folder):
    """Stop at a pickled network an older version left in a run folder, unread."""
    path = folder / LEGACY_NETWORK_FILE
    if path.exists():
        raise ValueError(f"{path} is a network pickled by an older skgradunc; it is not "
                         f"loaded, since unpickling a file can run any code; {ADVICE}")


def save_features(path, arrays, settings):
    """The run's arrays, with its settings as a JSON string array under ``"settings"``."""
    save_arrays(path, **arrays, settings=np.array(json.dumps(_comparable(settings))))


def load_features(path, settings):
    """:func:`save_features`'s arrays (without ``"settings"``), checked against ``settings``."""
    arrays = _read(path, load_arrays)
    recorded = arrays.pop("settings", None)
    check_settings(path, None if recorded is None else str(recorded), settings)
    return arrays


def run_identity(config, run):
    """Which run a cached file belongs to: its number (from 1, as its folder) and its seed,
    recorded with the file so that another run's file is refused in its place."""
    return {"run": run + 1, "run_seed": int(config.seed) + run}
