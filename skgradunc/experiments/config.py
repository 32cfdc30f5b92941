"""The settings of ``skgradunc reproduce`` and :func:`run_protocol`, their one check, and
the table of protocols and data sets their defaults come from (the command line's help is
written from it)."""

import os
from dataclasses import dataclass, replace
from pathlib import Path

from .._device import check_device
from .._validation import check_positive_int, check_positive_real, is_finite_real
from .checks import check_seed
from .parallel_runs import check_parallel_settings
from .recipes import DATA_SETS, PROTOCOLS

__all__ = ["ReproduceConfig", "check_config", "with_protocol_defaults", "make_out_folder"]


@dataclass
class ReproduceConfig:
    """Settings of :func:`run_protocol`, the options of ``skgradunc reproduce``.

    Parameters
    ----------
    data : {"digits", "mnist", "emnist"} or None, default=None
        None: the protocol's (digits for "paper", mnist for "uqgan", its only one).
    root : str or None, default=None
        Folder with the real data sets; needed for mnist and emnist (and the "uqgan"
        protocol), where it must be an existing folder; refused with the embedded
        digits, which read no files.
    runs : int or None, default=None
        Random re-splits, each with its own networks; None: the protocol's (10 for
        "paper", as the paper; 3 for "uqgan").
    out : str, default="skgradunc-results"
        Where the tables, the figure and the per-run cache go; created (with its
        parents) before any work, and refused when it cannot be.
    device : str, default="auto"
        Where networks train and gradients are computed: ``"auto"`` uses CUDA when
        available, else the CPU.
    seed : int, default=0
        Run k (counting from 0) seeds its split, CNN and meta classifiers with ``seed + k``.
    split : three floats or None, default=None
        Train / validation / test fractions of the in-distribution data, summing to at
        most 1: each part gets its fraction of the images, rounded (the test set never
        more than the other two leave; fractions summing to 1 leave no image out), and
        images beyond them are left unused. None takes the data set's: the paper's
        60k/20k/200k proportions for digits and emnist, 50k/10k/10k for mnist.
        ``config.json`` records the numbers of images used (``split_images``).
    epochs : int or None, default=None
        Training epochs; None takes the data set's (60 for digits, 15 for mnist, 8
        for emnist).
    lr : float or None, default=None
        Learning rate; None takes the data set's (0.01 for digits, 0.1 else).
    batch_size : int, default=256
        Chunk size of the gradient-metric extraction.
    ood_size : int, default=2000
        Images per unknown concept (a random subset of larger sets).
    protocol : {"paper", "uqgan"}, default="paper"
        "paper": Oberdiek et al. (2018), Tables 1-3 and Figure 2. "uqgan": UQGAN's MNIST
        0-4 benchmark with every detector of the package (docs/uqgan.md); it takes
        ``preset`` and refuses ``split``, ``epochs`` and ``lr``.
    preset : {"cpu", "authors"} or None, default=None
        The "uqgan" protocol's training budgets (None: "cpu", one run in about 30 min on
        2 CPU cores; "authors": the authors' MNIST settings, for a GPU).
    workers : int or None, default=None
        Run the runs as Dask tasks on a ``LocalCluster`` of this many worker processes
        (``pip install 'skgradunc[dask]'``); None: one after another in this process.
    scheduler : str or None, default=None
        Run the runs as Dask tasks on the existing cluster at this address
        (``tcp://host:8786``); its workers need skgradunc and a view of ``out``.
    threads : int or None, default=None
        Torch threads per run. Float32 training rounds differently with another number of
        threads, so the same tables from a serial and a Dask call need the same value;
        every cached file records it, and a resume with another count is refused.
        None: torch's own count serially, the cores divided among ``workers``, 1 on a
        ``scheduler``'s workers.

    Notes
    -----
    :func:`check_config` refuses values that cannot be run; ``config.json`` records
    the values used, with epochs and lr resolved.

    Examples
    --------
    >>> from skgradunc.experiments import ReproduceConfig
    >>> ReproduceConfig(runs=1, epochs=1)     # None: the protocol's or the data set's value
    ReproduceConfig(data=None, root=None, runs=1, out='skgradunc-results', device='auto',
                    seed=0, split=None, epochs=1, lr=None, batch_size=256, ood_size=2000,
                    protocol='paper', preset=None, workers=None, scheduler=None,
                    threads=None)
    """

    data: str = None            # None: the protocol's
    root: str = None
    runs: int = None            # None: the protocol's
    out: str = "skgradunc-results"
    device: str = "auto"
    seed: int = 0
    split: tuple = None         # None: the data set's
    epochs: int = None          # None: the data set's default
    lr: float = None
    batch_size: int = 256       # chunk size of the gradient-metric extraction
    ood_size: int = 2000        # images per unknown concept (a random subset of larger sets)
    protocol: str = "paper"
    preset: str = None          # the uqgan protocol's budgets; None: "cpu"
    workers: int = None         # Dask: a LocalCluster of this many processes
    scheduler: str = None       # Dask: an existing cluster's address
    threads: int = None         # torch threads per run; None: see resolve_threads


# what only the paper's protocol takes (the uqgan protocol's budgets are its presets)
PAPER_ONLY = ("split", "epochs", "lr")


def _check_split(split):
    fractions = [] if isinstance(split, str) or not hasattr(split, "__len__") else list(split)
    if (len(fractions) != 3
            or not all(is_finite_real(v) and v > 0 for v in fractions)
            or sum(fractions) > 1 + 1e-9):
        raise ValueError(f"split must be three positive fractions summing to at most 1, got "
                         f"{split!r}")


# where each data set's files are under --root
ROOT_HOLDS = {"mnist": "MNIST/raw/", "emnist": "EMNIST/raw/"}


def _check_root(config):
    """--root: refused with the embedded digits, needed (an existing folder) otherwise."""
    if config.data == "digits":
        if config.root is not None:
            raise ValueError(f"--root is not used by the embedded digits data set (--data "
                             f"digits reads no files), got {config.root!r}; leave it out, or "
                             f"choose --data mnist or emnist")
        return
    needs = "--protocol uqgan" if config.protocol == "uqgan" else f"--data {config.data}"
    if config.root is None:
        raise ValueError(f"{needs} needs --root, the folder holding {ROOT_HOLDS[config.data]}")
    if not isinstance(config.root, (str, os.PathLike)):
        raise ValueError(f"root must be the path of a folder, got {config.root!r}")
    root = Path(config.root)
    if not root.exists():
        raise ValueError(f"--root {str(config.root)!r} does not exist; {needs} needs the "
                         f"folder holding {ROOT_HOLDS[config.data]}")
    if not root.is_dir():
        raise ValueError(f"--root {str(config.root)!r} is not a folder; {needs} needs the "
                         f"folder holding {ROOT_HOLDS[config.data]}")


def with_protocol_defaults(config):
    """``config`` with its protocol's data, runs and preset where they are None."""
    if config.protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {config.protocol!r}; choose one of "
                         f"{list(PROTOCOLS)}")
    defaults = PROTOCOLS[config.protocol]
    return replace(config, **{key: value for key, value in defaults.items()
                              if getattr(config, key) is None})


def _check_uqgan_config(config):
    from .uqgan.runs import PRESETS
    if config.data != "mnist":
        raise ValueError(f"--protocol uqgan runs on MNIST 0-4 only (--data mnist), got "
                         f"{config.data!r}")
    if config.preset not in PRESETS:
        raise ValueError(f"unknown preset {config.preset!r}; choose one of {list(PRESETS)}")
    given = [key for key in PAPER_ONLY if getattr(config, key) is not None]
    if given:
        raise ValueError(f"{', '.join(given)}: only for --protocol paper; the uqgan "
                         f"protocol's training is set by --preset ({list(PRESETS)})")


def check_config(config):
    """Refuse a configuration that cannot be run as given, naming the setting.

    The one check of ``skgradunc reproduce``'s options and of :func:`run_protocol`'s
    ``config`` (None values take their protocol's defaults first). It writes no file:
    of the file system it only looks at ``root``, which must be an existing folder
    (mnist, emnist, the "uqgan" protocol) or None (the embedded digits). Whether
    ``out`` can be created is checked by :func:`make_out_folder`, at the start of the
    run.

    Parameters
    ----------
    config : ReproduceConfig
        The settings to check; it is not changed.

    Raises
    ------
    ValueError
        Naming the first bad setting, what it must be and the value given.

    Examples
    --------
    >>> from skgradunc.experiments import ReproduceConfig, check_config
    >>> check_config(ReproduceConfig(runs=1, epochs=1))         # can be run: no error
    >>> check_config(ReproduceConfig(split=(0.8, 0.3, 0.1)))
    Traceback (most recent call last):
    ...
    ValueError: split must be three positive fractions summing to at most 1, got (0.8, 0.3, 0.1)
    >>> check_config(ReproduceConfig(protocol="uqgan", epochs=3))
    Traceback (most recent call last):
    ...
    ValueError: epochs: only for --protocol paper; the uqgan protocol's training is set by ...
    >>> check_config(ReproduceConfig(root="../shared/data"))
    Traceback (most recent call last):
    ...
    ValueError: --root is not used by the embedded digits data set (--data digits reads no ...
    """
    config = with_protocol_defaults(config)
    if config.protocol == "uqgan":
        _check_uqgan_config(config)
    elif config.preset is not None:
        raise ValueError(f"preset: only for --protocol uqgan, got {config.preset!r} with "
                         f"--protocol paper")
    if config.data not in DATA_SETS:
        raise ValueError(f"unknown data set {config.data!r}; choose one of {sorted(DATA_SETS)}")
    _check_root(config)
    check_positive_int(config.runs, "runs")
    check_seed(config.seed, "seed", count=config.runs)
    if config.split is not None:
        _check_split(config.split)
    check_positive_int(config.epochs, "epochs", optional=True)
    check_positive_real(config.lr, "lr", optional=True)
    check_positive_int(config.batch_size, "batch_size")
    check_positive_int(config.ood_size, "ood_size")
    check_device(config.device)
    check_parallel_settings(config)


def make_out_folder(out):
    """Create the output folder ``out`` (with its parents) where it is not yet one.

    Parameters
    ----------
    out : str or Path
        ``ReproduceConfig.out``.

    Raises
    ------
    ValueError
        Naming the folder and why it cannot be created (a file in the way, a parent
        that cannot hold folders, no permission, a full disk).

    Examples
    --------
    >>> import os, tempfile
    >>> from skgradunc.experiments.config import make_out_folder
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     out = os.path.join(folder, "results", "digits")
    ...     make_out_folder(out)
    ...     print(os.path.isdir(out))
    True
    >>> make_out_folder("/dev/null/results")
    Traceback (most recent call last):
    ...
    ValueError: cannot create the output folder /dev/null/results: Not a directory (--out)
    """
    try:
        Path(out).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        reason = ("a file of that name is in the way" if Path(out).exists()
                  else exc.strerror or str(exc))
        raise ValueError(f"cannot create the output folder {out}: {reason} (--out)") from exc
