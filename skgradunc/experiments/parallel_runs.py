"""The protocols' runs: one after another in this process, or as Dask tasks.

Runs are independent (each has its own seed, split and networks) and each caches what it
computed under ``out/runs/run-NN`` as it goes, so they can go to Dask workers as they are:
with ``workers`` on a ``LocalCluster`` of that many worker processes, with ``scheduler`` on
an existing cluster. The data go to each worker once (scattered); a task carries the
settings and its run number. A worker writes its run's cache files itself (complete or
absent, as serially), so a finished run is never redone, and a worker that dies loses only
its unfinished run, which Dask gives to another worker; the next call resumes from the
files. The tables are made here, in run order, from the runs' results.

The number of torch threads is part of a run's arithmetic: float32 training rounds
differently with 1 and 2 threads (measured: other weights after 2 epochs), as on another
CPU. ``threads`` fixes it, so a run gives the same result serially and on a worker; the
Dask default is the cores divided among the local workers (1 on a remote cluster).
"""

import importlib.util
import os
from contextlib import contextmanager
from dataclasses import replace

import torch
from tqdm.auto import tqdm

from .._device import resolve_device
from .._validation import check_positive_int

__all__ = ["DASK_NEEDED", "check_parallel_settings", "computed_runs", "environment_kept",
           "resolve_threads"]

DASK_NEEDED = ("--workers and --scheduler run the runs as Dask tasks, which needs dask and "
               "distributed: pip install 'skgradunc[dask]'")


def check_parallel_settings(config):
    """Refuse ``workers``/``scheduler``/``threads`` values that cannot be run."""
    check_positive_int(config.workers, "workers", optional=True)
    check_positive_int(config.threads, "threads", optional=True)
    if config.scheduler is not None and not (isinstance(config.scheduler, str)
                                             and config.scheduler.strip()):
        raise ValueError(f"scheduler must be a Dask scheduler address such as "
                         f"'tcp://10.0.0.1:8786', got {config.scheduler!r}")
    if config.workers is not None and config.scheduler is not None:
        raise ValueError("give workers (a local cluster of that many processes) or "
                         "scheduler (an existing cluster), not both")
    if _on_dask(config) and importlib.util.find_spec("distributed") is None:
        raise ValueError(DASK_NEEDED)


def resolve_threads(config):
    """The torch threads each run computes with: ``config.threads``, else torch's own
    count serially, the cores divided among the workers of a local cluster, and 1 (Dask's
    default for worker processes) on an existing cluster."""
    if config.threads is not None:
        return int(config.threads)
    if config.scheduler is not None:
        return 1
    if config.workers is not None:
        return max(1, torch.get_num_threads() // int(config.workers))
    return torch.get_num_threads()


def _on_dask(config):
    return config.workers is not None or config.scheduler is not None


@contextmanager
def _torch_threads(n):
    saved = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(saved)


def computed_runs(compute, config, data, log):
    """Each run's results, in run order: ``compute(config, data, run, log=...)`` for run
    0 .. ``config.runs - 1`` (``config`` resolved, its ``threads`` set). Serially one at a
    time, as it is computed; on Dask once all are done, each finished run logged."""
    run_log = (lambda m: tqdm.write(str(m))) if log is print else log
    if not _on_dask(config):
        for run in tqdm(range(config.runs), desc="runs", unit="run", disable=None):
            with _torch_threads(config.threads):
                yield compute(config, data, run, log=run_log)
        return
    yield from _computed_on_dask(compute, config, data, run_log)


# Dask starts worker processes with MALLOC_TRIM_THRESHOLD_=65536 (glibc gives freed memory
# back at once, against fragmentation). Torch frees and takes its large buffers every
# batch, so each batch faults its pages in again: training ran 1.8x slower on a worker
# (3.3 s user + 2.5 s system against 2.9 + 0.4 s). The local cluster's workers keep
# glibc's default.
_WORKER_MALLOC = {"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None}


@contextmanager
def environment_kept():
    """``os.environ`` as it was after the block: a Dask nanny writes its workers' settings
    (OMP_NUM_THREADS=1, ...) into its own process's environment before it starts them,
    which every later subprocess of the caller would inherit."""
    saved = dict(os.environ)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def _client(config):
    import dask
    from distributed import Client, LocalCluster
    if config.scheduler is not None:
        return Client(config.scheduler)
    # one task per worker process; progress bars off in the workers (they would
    # interleave on this terminal); the runs' messages come back with their results
    with dask.config.set(_WORKER_MALLOC), environment_kept():
        cluster = LocalCluster(n_workers=int(config.workers), threads_per_worker=1,
                               processes=True, dashboard_address=":0",
                               env={"TQDM_DISABLE": "1"})
    return Client(cluster)


def _computed_on_dask(compute, config, data, log):
    from distributed import as_completed
    client = _client(config)
    try:
        shared = client.scatter(data, broadcast=True)    # once per worker, not per run
        futures = {client.submit(_run_task, compute, config, shared, run, pure=False,
                                 key=f"skgradunc-run-{run + 1}-{os.getpid()}"): run
                   for run in range(config.runs)}
        results = {}
        for future in as_completed(futures):
            run = futures[future]
            arrays, messages = future.result()   # a run's error is raised here, as it is
            for message in messages:
                log(message)
            results[run] = arrays
            log(f"run {run + 1} finished ({len(results)} of {config.runs})")
        return [results[run] for run in range(config.runs)]
    finally:
        cluster = getattr(client, "cluster", None)
        client.close()
        if cluster is not None:
            with environment_kept():
                cluster.close()


def _run_task(compute, config, data, run):
    """One run on a worker: its results and the messages it logged."""
    messages = []
    config = replace(config, device=_worker_device(config.device))
    with _torch_threads(config.threads):
        arrays = compute(config, data, run, log=messages.append)
    return arrays, messages


def _worker_device(device):
    """``"auto"`` on a worker of a machine with several GPUs: one GPU per worker, by the
    worker's number (a LocalCluster names its workers 0, 1, ...)."""
    if device not in ("auto", None) or not torch.cuda.is_available():
        return resolve_device(device)
    from distributed import get_worker
    return device_for_worker(get_worker().name, torch.cuda.device_count())


def device_for_worker(name, n_gpus):
    """The GPU of worker ``name`` among ``n_gpus``: ``cuda:(name mod n_gpus)`` for a
    numbered worker, ``cuda`` (the first visible one) for a named one, as a worker of
    dask-cuda sees only its own GPU."""
    try:
        index = int(name)
    except (TypeError, ValueError):
        return "cuda"
    return f"cuda:{index % n_gpus}"
