"""The worker plugin of :func:`skgradunc.cluster.sent_once` (imports dask.distributed, which
the package needs only with the ``dask`` extra)."""

from distributed.diagnostics.plugin import WorkerPlugin

# key -> a worker's copy, while the plugin that brought it is registered
ON_WORKER = {}


class Holder(WorkerPlugin):
    """Brings an estimator to every worker (those that join later too, before they run a
    task) and keeps it there under its key until the plugin is unregistered."""

    def __init__(self, key, estimator):
        self.key = key
        self.estimator = estimator

    def setup(self, worker):
        ON_WORKER[self.key] = self.estimator

    def teardown(self, worker):
        ON_WORKER.pop(self.key, None)
