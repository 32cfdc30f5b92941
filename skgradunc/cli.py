"""The ``skgradunc`` command line.

``skgradunc reproduce`` runs the paper's protocol (Tables 1-3, Figure 2), or with
``--protocol uqgan`` UQGAN's MNIST 0-4 benchmark;
``skgradunc train`` trains the paper's CNN and reports its test accuracy.
Bare ``skgradunc`` runs the main job, ``reproduce`` on the embedded digits.
"""

import argparse
import os
import re
import sys
import time

import numpy as np
from sklearn.model_selection import train_test_split

from . import __version__
from .callbacks import TrainingDivergedError
from .classifier import CNNClassifier
from .datasets import load_digits28
from .experiments.recipes import PROTOCOLS, RECIPES, described
from .training import fit_with_recovery

# what `skgradunc train` can load (the real data sets are the reproduction's)
TRAIN_DATA = ("digits",)

DEBUG_VARIABLE = "SKGRADUNC_DEBUG"   # set (not "0"): tracebacks, as with --debug
EXIT_ERROR = 1          # the command failed while running (data, cache, training)
EXIT_USAGE = 2          # an invalid option value, refused before any work (as argparse)
EXIT_INTERRUPTED = 130  # Ctrl-C, the shell's 128 + SIGINT
# what a user can cause and fix; anything else is a bug and keeps its traceback
USER_ERRORS = (ValueError, OSError, TrainingDivergedError)
INTERRUPTED = {"reproduce": "interrupted — run the same command again to resume",
               "train": "interrupted"}
ANSI_CODE = re.compile(r"\x1b\[[0-9;]*m")


def _load(name):
    if name == "digits":
        return load_digits28(return_X_y=True)
    raise ValueError(f"unknown data set {name!r}")  # argparse's choices guard this


def _add_common_arguments(parser, device="auto"):
    parser.add_argument("--device", default=device,
                        help="auto, cpu, cuda, cuda:1 ... (default: %(default)s: cuda when "
                             "available)")
    parser.add_argument("--debug", action="store_true",
                        help="on an error, show the Python traceback instead of one line "
                             f"(default: off; or set {DEBUG_VARIABLE}=1)")


def _add_train_arguments(parser):
    parser.add_argument("--data", choices=TRAIN_DATA, default="digits",
                        help="data set (default: %(default)s, embedded, no download)")
    parser.add_argument("--epochs", type=int, default=None,
                        help=f"training epochs (default: {described('epochs', TRAIN_DATA)})")
    parser.add_argument("--lr", type=float, default=None,
                        help=f"initial learning rate (default: {described('lr', TRAIN_DATA)}; "
                             "the paper's 0.1 diverges on such small data)")
    parser.add_argument("--batch-size", type=int, default=None,
                        help=f"training batch size (default: "
                             f"{described('batch_size', TRAIN_DATA)})")
    parser.add_argument("--test-size", type=float, default=0.25,
                        help="fraction held out for testing, stratified (default: "
                             "%(default)s)")
    parser.add_argument("--seed", type=int, default=0,
                        help="split and training seed (default: %(default)s)")
    parser.add_argument("--retries", type=int, default=2,
                        help="if training diverges, retry this often with lr/10 and "
                             "the next seed (default: %(default)s)")
    parser.add_argument("--quiet", action="store_true",
                        help="no per-epoch table (default: off, the table is printed)")
    _add_common_arguments(parser)


def _add_reproduce_arguments(parser):
    from .experiments import ReproduceConfig
    from .experiments.uqgan.runs import PRESETS
    defaults = ReproduceConfig()  # one source of the defaults, shared with the Python API
    parser.add_argument("--protocol", choices=tuple(PROTOCOLS), default=defaults.protocol,
                        help="paper: Oberdiek et al. 2018, Tables 1-3 and Figure 2; uqgan: "
                             "UQGAN's MNIST 0-4 benchmark with every detector of the package "
                             "(default: %(default)s)")
    parser.add_argument("--data", choices=sorted(RECIPES), default=defaults.data,
                        help=f"in-distribution data (default: {PROTOCOLS['paper']['data']}, "
                             f"embedded, no download; {PROTOCOLS['uqgan']['data']}, the only "
                             "one, for --protocol uqgan)")
    parser.add_argument("--root", default=defaults.root,
                        help="folder with the real data sets, e.g. ../shared/data (default: "
                             "none; needed for mnist, emnist and --protocol uqgan, not "
                             "taken with the embedded digits)")
    parser.add_argument("--runs", type=int, default=defaults.runs,
                        help=f"random re-splits, each with its own networks (default: "
                             f"{PROTOCOLS['paper']['runs']}, as the paper; "
                             f"{PROTOCOLS['uqgan']['runs']} for --protocol uqgan)")
    parser.add_argument("--out", default=defaults.out,
                        help="where tables, figure and the resumable cache go (default: "
                             "%(default)s)")
    parser.add_argument("--seed", type=int, default=defaults.seed,
                        help="seed of run 1; run k uses seed + k - 1 (default: "
                             "%(default)s)")
    parser.add_argument("--epochs", type=int, default=defaults.epochs,
                        help=f"training epochs (default: {described('epochs')})")
    parser.add_argument("--lr", type=float, default=defaults.lr,
                        help=f"learning rate (default: {described('lr')})")
    parser.add_argument("--ood-size", type=int, default=defaults.ood_size,
                        help="at most this many images per unknown concept: fewer where a "
                             "concept has fewer (the digits default's at most 1000); "
                             "config.json records the counts used (default: %(default)s)")
    parser.add_argument("--split", type=float, nargs=3, default=None,
                        metavar=("TRAIN", "VALIDATION", "TEST"),
                        help="fractions of the in-distribution data, summing to at most "
                             "1; each part gets its fraction of the images, the rest are "
                             "unused; config.json records the numbers (default: the paper's "
                             "60k/20k/200k proportions; 50k/10k/10k for mnist)")
    parser.add_argument("--preset", choices=sorted(PRESETS), default=defaults.preset,
                        help="--protocol uqgan's training budgets: cpu, one run in about 30 "
                             "min on 2 CPU cores; authors, their MNIST settings, for a GPU "
                             "(default: cpu)")
    parser.add_argument("--workers", type=int, default=defaults.workers, metavar="N",
                        help="run the runs as Dask tasks on a local cluster of N worker "
                             "processes; needs pip install 'skgradunc[dask]' (default: one "
                             "after another in this process)")
    parser.add_argument("--scheduler", default=defaults.scheduler, metavar="ADDRESS",
                        help="run the runs as Dask tasks on the cluster at ADDRESS, e.g. "
                             "tcp://10.0.0.1:8786; its workers need skgradunc and a view of "
                             "--out (default: none)")
    parser.add_argument("--threads", type=int, default=defaults.threads,
                        help="torch threads per run; the same tables from two calls need "
                             "the same value, and a resume with another is refused (default: "
                             "torch's own serially, the cores divided among --workers, 1 on "
                             "a --scheduler's workers)")
    _add_common_arguments(parser, device=defaults.device)


def _reproduce_config(args):
    from .experiments import ReproduceConfig
    config = ReproduceConfig(data=args.data, root=args.root, runs=args.runs, out=args.out,
                             device=args.device, seed=args.seed, epochs=args.epochs, lr=args.lr,
                             ood_size=args.ood_size, protocol=args.protocol,
                             preset=args.preset, workers=args.workers,
                             scheduler=args.scheduler, threads=args.threads)
    if args.split is not None:
        config.split = tuple(args.split)
    return config


EXIT_STATUS = (f"Exit status: 0 done, {EXIT_ERROR} failed while running (one line on "
               f"stderr), {EXIT_USAGE} invalid option, {EXIT_INTERRUPTED} interrupted (Ctrl-C).")


def build_parser():
    parser = argparse.ArgumentParser(
        prog="skgradunc",
        description="Gradient-based uncertainty for neural-network classifiers. "
                    "Without a command, runs 'reproduce' on the embedded digits.",
        epilog=EXIT_STATUS)
    parser.add_argument("--version", action="version", version=f"skgradunc {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    train = commands.add_parser(
        "train", help="train the paper's CNN and report its test accuracy", epilog=EXIT_STATUS)
    _add_train_arguments(train)
    reproduce = commands.add_parser(
        "reproduce", help="the paper's protocol (K runs, Tables 1-3, Figure 2), or UQGAN's "
                          "MNIST 0-4 benchmark (--protocol uqgan)",
        epilog=EXIT_STATUS)
    _add_reproduce_arguments(reproduce)
    return parser


def _check_train_arguments(args):
    """The values ``skgradunc train`` cannot run with, refused before any work."""
    from ._validation import (check_fraction, check_non_negative_int, check_positive_int,
                              check_positive_real)
    from ._device import check_device
    from .experiments.checks import check_seed
    check_positive_int(args.epochs, "epochs", optional=True)
    check_positive_real(args.lr, "lr", optional=True)
    check_positive_int(args.batch_size, "batch_size", optional=True)
    check_fraction(args.test_size, "test_size")
    check_seed(args.seed, "seed")
    check_non_negative_int(args.retries, "retries")
    check_device(args.device)


def _print_plain(text):
    """skorch's epoch table without its colour codes (for a file or a pipe)."""
    print(ANSI_CODE.sub("", text))


def _epoch_table_sink(quiet):
    # PrintLog silences only the plain print at verbose=0; other sinks always print
    return print if quiet or sys.stdout.isatty() else _print_plain


def run_train(args, out=print):
    """``skgradunc train``: train the paper's CNN; return its test accuracy."""
    from .experiments.checks import CompletedEpochs, raise_if_interrupted
    recipe = RECIPES[args.data]
    lr = recipe["lr"] if args.lr is None else args.lr
    epochs = recipe["epochs"] if args.epochs is None else args.epochs
    batch_size = recipe["batch_size"] if args.batch_size is None else args.batch_size
    X, y = _load(args.data)
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=args.test_size, stratify=y, random_state=args.seed)
    net = CNNClassifier(lr=lr, max_epochs=epochs, batch_size=batch_size,
                        device=args.device, random_state=args.seed,
                        verbose=0 if args.quiet else 1,
                        callbacks=[("completed_epochs", CompletedEpochs())],
                        callbacks__print_log__sink=_epoch_table_sink(args.quiet))
    out(f"skgradunc {__version__}: training the paper's CNN on '{args.data}' "
        f"({len(X_train)} train / {len(X_test)} test images of shape "
        f"{tuple(X.shape[1:])}), lr={lr:g}, {epochs} epochs, device={net.device}")
    start = time.perf_counter()
    net, attempts = fit_with_recovery(net, X_train, y_train, retries=args.retries, log=out)
    raise_if_interrupted(net)  # skorch ends fit quietly on Ctrl-C; no accuracy for that
    seconds = time.perf_counter() - start
    accuracy = float(np.mean(net.predict(X_test) == y_test))
    out(f"test accuracy: {accuracy:.2%} on {len(X_test)} images "
        f"(lr={attempts[-1]['lr']:g}, seed={attempts[-1]['random_state']}, "
        f"attempts={len(attempts)}); training took {seconds:.1f} s")
    return accuracy


def _checked_command(args):
    """The command to run, once its arguments passed the checks (ValueError if not)."""
    if args.command == "train":
        _check_train_arguments(args)
        return lambda: run_train(args)
    from .experiments import check_config, run_protocol
    from .experiments.config import make_out_folder
    config = _reproduce_config(args)
    check_config(config)  # the same checks run_protocol makes, before any work
    make_out_folder(config.out)
    return lambda: run_protocol(config)


def _debugging(args):
    return args.debug or os.environ.get(DEBUG_VARIABLE, "0") not in ("", "0")


def _error(message):
    print(f"skgradunc: {message}", file=sys.stderr)


def main(argv=None):
    """Run the command line; return the exit status (see ``skgradunc --help``).

    A user error (invalid value, missing or corrupt file, diverged training) is
    one line on stderr, ``skgradunc: error: ...``, without a traceback unless
    ``--debug`` is given or ``SKGRADUNC_DEBUG`` is set.
    """
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0].startswith("-") and argv[0] not in ("-h", "--help", "--version"):
        argv = ["reproduce", *argv]  # bare `skgradunc [options]` runs the main job
    args = parser.parse_args(argv)
    debug = _debugging(args)
    try:
        command = _checked_command(args)
    except ValueError as exc:
        if debug:
            raise
        _error(f"error: {exc}")
        return EXIT_USAGE
    try:
        command()
    except KeyboardInterrupt:
        if debug:
            raise
        _error(INTERRUPTED[args.command])
        return EXIT_INTERRUPTED
    except USER_ERRORS as exc:
        if debug:
            raise
        _error(f"error: {exc}")
        return EXIT_ERROR
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
