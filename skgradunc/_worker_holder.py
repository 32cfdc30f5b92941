"""The worker plugin of :func:`skgradunc.cluster.sent_once` (imports dask.distributed, which
the package needs only with the ``dask`` extra)."""

import pickle
import threading

from distributed.diagnostics.plugin import WorkerPlugin

# key -> [a worker's copy, how many workers of this process hold it] (a process may run
# several workers: one's teardown must not take it from the others)
_ON_WORKER = {}
_GUARD = threading.Lock()


def held(key):
    """The copy held under ``key`` in this process, or None."""
    with _GUARD:
        entry = _ON_WORKER.get(key)
        return None if entry is None else entry[0]


class Holder(WorkerPlugin):
    """Brings an estimator to every worker (those that join later too, before they run a
    task) and keeps it there under its key until the plugin is unregistered. It travels
    pickled (``payload``) and is unpickled by ``setup``, so that a worker that cannot load
    it fails there, with the reason, and the caller withdraws the plugin."""

    def __init__(self, key, payload):
        self.key = key
        self.payload = payload

    def setup(self, worker):
        estimator = pickle.loads(self.payload)
        with _GUARD:
            entry = _ON_WORKER.setdefault(self.key, [estimator, 0])
            entry[1] += 1

    def teardown(self, worker):
        with _GUARD:
            entry = _ON_WORKER.get(self.key)
            if entry is not None:
                entry[1] -= 1
                if entry[1] <= 0:
                    del _ON_WORKER[self.key]
