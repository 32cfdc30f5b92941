"""Shared fixtures: seeded, small, and cached per session where training is involved."""

from pathlib import Path

import numpy as np
import pytest
import torch

from skgradunc import CNNClassifier
from skgradunc.datasets import load_digits28

from devices import DEVICE

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
# the tables whose cells are times on the clock (a run's seconds, a detector's cost per
# image): the rest of tables.json is the same, byte for byte, for the same settings
CLOCK_TABLES = ("Cost", "Training time")


def tables_without_clock(path):
    """A reproduction's tables.json without :data:`CLOCK_TABLES`, as text."""
    import json
    tables = json.loads(Path(path).read_text())
    return json.dumps({k: v for k, v in tables.items() if k not in CLOCK_TABLES}, indent=2)


def pytest_configure(config):
    if DEVICE.startswith("cuda") and not torch.cuda.is_available():
        raise pytest.UsageError(f"SKGRADUNC_TEST_DEVICE={DEVICE} but torch sees no CUDA GPU")


@pytest.fixture(autouse=True)
def _seed_everything():
    """Every test starts from the same random state, whatever ran before it."""
    np.random.seed(0)
    torch.manual_seed(0)


@pytest.fixture(scope="session")
def digits():
    """The embedded default: (X, y), float32 (1797, 1, 28, 28)."""
    return load_digits28(return_X_y=True)


@pytest.fixture(scope="session")
def digits_split(digits):
    """A small, fixed train/test split of the digits."""
    X, y = digits
    rng = np.random.RandomState(0)
    order = rng.permutation(len(X))
    train, test = order[:600], order[600:900]
    return X[train], y[train], X[test], y[test]


@pytest.fixture(scope="session")
def fitted_net(digits_split):
    """A briefly trained paper CNN (tests must not modify it)."""
    X_train, y_train, _, _ = digits_split
    return CNNClassifier(lr=0.01, batch_size=64, max_epochs=10, random_state=0,
                         verbose=0).fit(
        X_train, y_train)


@pytest.fixture(scope="module")
def dask_client():
    """A LocalCluster of two worker processes, one thread each (tests/test_cluster.py,
    tests/test_parallel_runs.py); closed after the module, so that its scheduler's threads
    do not allocate during later tests (test_data.py traces this process's allocations)."""
    import distributed
    from skgradunc.experiments.parallel_runs import environment_kept
    with environment_kept():   # the nanny's OMP_NUM_THREADS=1 would reach later subprocesses
        cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                           dashboard_address=None)
    with cluster, distributed.Client(cluster) as client:
        yield client


@pytest.fixture(scope="session")
def shared_data():
    """Path to ../shared/data; tests that need real files skip clearly without it."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data sets not found at {SHARED_DATA} (../shared/data beside the repo)")
    return SHARED_DATA
