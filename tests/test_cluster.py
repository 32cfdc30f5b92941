"""skgradunc.cluster: gradient features of a dask array, block by block, on dask's threads
and on a LocalCluster of worker processes; transform from several threads at once; grid
searches on joblib's dask backend, with the network sent to each worker once."""

import copy
import copyreg
import os
import pickle
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from types import SimpleNamespace

import dask.array as da
import joblib
import numpy as np
import pytest
from sklearn.base import BaseEstimator, clone
from sklearn.frozen import FrozenEstimator
from sklearn.model_selection import GridSearchCV, cross_val_score, cross_validate
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from skgradunc import GradientMetricTransformer, MetaClassifier, correctness_target, metrics
from skgradunc.cluster import sent_once, transform_blocks
from skgradunc.experiments.parallel_runs import environment_kept
from tolerances import assert_features_close


@pytest.fixture(scope="module")
def fitted(fitted_net, digits_split):
    X = digits_split[2][:150]
    return GradientMetricTransformer(FrozenEstimator(fitted_net), device="cpu").fit(X), X


def test_blocks_on_threads_give_the_numpy_features(fitted):
    grad, X = fitted
    lazy = transform_blocks(grad, da.from_array(X, chunks=(40, 1, 14, 28)))
    assert lazy.shape == (150, len(grad.get_feature_names_out()))
    assert lazy.chunks == ((40, 40, 40, 30), (lazy.shape[1],))
    assert_features_close(lazy.compute(scheduler="threads"), grad.transform(X),
                          grad.get_feature_names_out())


def test_a_numpy_array_and_a_pipeline_with_pandas_output(fitted):
    grad, X = fitted
    pipe = make_pipeline(grad, StandardScaler()).set_output(transform="pandas").fit(X)
    expected = pipe.transform(X).to_numpy()
    np.testing.assert_allclose(transform_blocks(pipe, X).compute(scheduler="threads"),
                               expected, rtol=1e-4, atol=1e-6)


def test_one_dimensional_input_is_refused(fitted):
    with pytest.raises(ValueError, match=r"at least 2 dimensions\), got shape \(5,\)"):
        transform_blocks(fitted[0], np.zeros(5, dtype=np.float32))


def test_threads_sharing_one_network_take_turns(fitted):
    """fit and transform hook into the network while they run: concurrent calls must not
    see each other's hooks (they did, before the per-network lock)."""
    grad, X = fitted
    parts = [X[i::4] for i in range(4)]
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(grad.transform, parts))
    for part, result in zip(parts, results):
        assert_features_close(result, grad.transform(part), grad.get_feature_names_out())
    # fit probes the network with hooks too: clones (which share it) fitted in threads
    with ThreadPoolExecutor(4) as pool:
        fitted = list(pool.map(lambda part: clone(grad).fit(part), parts))
    assert {one.strategy_ for one in fitted} == {grad.strategy_}


def test_blocks_on_a_local_cluster_of_processes(fitted, dask_client):
    grad, X = fitted
    lazy = transform_blocks(grad, da.from_array(X, chunks=(50, 1, 28, 28)))
    features = dask_client.compute(lazy).result()
    assert len(dask_client.run(lambda: True)) == 2
    assert_features_close(features, grad.transform(X), grad.get_feature_names_out())


@pytest.fixture(scope="module")
def search_setup(fitted_net, digits_split):
    X, y = digits_split[2][:240], digits_split[3][:240]
    frozen = FrozenEstimator(fitted_net)
    pipe = make_pipeline(GradientMetricTransformer(frozen, device="cpu"),
                         MetaClassifier("lasso", random_state=0))
    return frozen, pipe, X, correctness_target(fitted_net, X, y)


def test_a_grid_search_on_the_dask_backend_equals_the_serial_one(search_setup, dask_client):
    """scikit-learn's documented route to a cluster, with the network sent once."""
    frozen, pipe, X, y_meta = search_setup
    search = GridSearchCV(pipe, {"metaclassifier__C": [0.1, 1.0]}, cv=3,
                          scoring=metrics.scorer("auroc"))
    serial = search.fit(X, y_meta).cv_results_
    with joblib.parallel_config(backend="dask"), sent_once(frozen, dask_client):
        on_cluster = search.set_params(n_jobs=-1).fit(X, y_meta).cv_results_
        scores = cross_val_score(pipe, X, y_meta, cv=3, n_jobs=-1,
                                 scoring=metrics.scorer("auroc"))
    # the same features up to float32 rounding (1 thread on a worker, more here): the
    # same ranks, so the same AUROCs
    for key in ("mean_test_score", "std_test_score", "rank_test_score"):
        np.testing.assert_allclose(on_cluster[key], serial[key], rtol=0, atol=1e-9,
                                   err_msg=key)
    np.testing.assert_allclose(scores, cross_val_score(pipe, X, y_meta, cv=3,
                                                       scoring=metrics.scorer("auroc")),
                               rtol=0, atol=1e-9)


def _held_here(key):
    from skgradunc._worker_holder import held
    return held(key) is not None


def test_sent_once_pickles_the_network_as_a_reference_in_its_block(search_setup, dask_client):
    frozen, pipe, X, _ = search_setup
    whole = len(pickle.dumps(clone(pipe)))
    with sent_once(frozen, dask_client) as key:
        # every worker holds it, before any task names it
        held = dask_client.run(_held_here, key)
        assert len(held) == 2 and all(held.values())
        # copy.deepcopy asks copyreg's reducers too, and still makes a real copy (code that
        # copies a network to change the copy must not change the original)
        twin = copy.deepcopy(frozen)
        assert twin is not frozen and twin.estimator.module_ is not frozen.estimator.module_
        assert type(twin) is FrozenEstimator
        task = pickle.dumps(clone(pipe))
        assert key in task.decode("latin-1")
        # unpickled in this process (not a worker): the original, found here
        unpickled = pickle.loads(task)
        assert unpickled[0].estimator is frozen
        assert_features_close(unpickled[0].fit(X[:5]).transform(X[:5]), pipe[0].fit(X[:5])
                              .transform(X[:5]), pipe[0].get_feature_names_out())
    assert len(task) < whole / 20       # the paper CNN: 0.7 of 220 kB
    assert not any(dask_client.run(_held_here, key).values())   # the workers let it go
    again = pickle.loads(pickle.dumps(clone(pipe)))   # after the block: the network itself
    assert len(pickle.dumps(clone(pipe))) == whole
    assert again[0].estimator is not frozen
    assert type(again[0].estimator) is FrozenEstimator
    # a reference kept past its block says what happened when it is used
    with pytest.raises(RuntimeError, match="sent_once .* not held in this process"):
        pickle.loads(task)[0].fit(X[:5])


def test_sent_once_leaves_other_objects_of_the_type_alone(search_setup, dask_client):
    frozen, _, _, _ = search_setup
    other = FrozenEstimator(frozen.estimator)
    with sent_once(frozen, dask_client):
        copied = pickle.loads(pickle.dumps(other))
        assert type(copied) is FrozenEstimator and copied.estimator is not frozen.estimator


def test_a_torch_module_sent_once_and_fitted_pipelines_coming_back(search_setup, dask_client):
    """A bare module works as on one machine, and pipelines a task returns come back
    holding the sender's network (a reference both ways)."""
    frozen, _, X, y_meta = search_setup
    module = frozen.estimator.module_
    pipe = make_pipeline(GradientMetricTransformer(module, device="cpu"),
                         MetaClassifier("ridge", random_state=0))
    serial = cross_validate(pipe, X, y_meta, cv=3, scoring=metrics.scorer("auroc"))
    with joblib.parallel_config(backend="dask"), sent_once(module, dask_client):
        on_cluster = cross_validate(pipe, X, y_meta, cv=3, n_jobs=-1, return_estimator=True,
                                    scoring=metrics.scorer("auroc"))
    np.testing.assert_allclose(on_cluster["test_score"], serial["test_score"], rtol=0,
                               atol=1e-9)
    assert all(fitted[0].estimator_ is module and fitted[0].module_ is module
               for fitted in on_cluster["estimator"])


def _plugins_on_the_scheduler(dask_scheduler):
    return [name for name in dask_scheduler.worker_plugins if "sent-once" in name]


def test_blocks_closed_in_any_order_leave_pickling_as_it_was(search_setup, dask_client):
    frozen, _, _, _ = search_setup
    other = FrozenEstimator(frozen.estimator)
    with ExitStack() as second_open:
        with ExitStack() as first_open:
            first_open.enter_context(sent_once(frozen, dask_client))
            second_key = second_open.enter_context(sent_once(other, dask_client))
        # the first one has closed, the second is open
        assert second_key in pickle.dumps(other).decode("latin-1")
        assert len(pickle.dumps(frozen)) > 100_000  # the network itself again
    assert FrozenEstimator not in copyreg.dispatch_table
    assert len(pickle.dumps(other)) > 100_000
    assert dask_client.run_on_scheduler(_plugins_on_the_scheduler) == []


def test_sending_one_network_twice_at_once_is_refused(search_setup, dask_client):
    frozen, _, _, _ = search_setup
    with sent_once(frozen) as key:          # no client given: the current one
        assert all(dask_client.run(_held_here, key).values())
        with pytest.raises(ValueError, match="already being sent by an open sent_once"):
            with sent_once(frozen, dask_client):
                pass
    assert FrozenEstimator not in copyreg.dispatch_table
    assert dask_client.run_on_scheduler(_plugins_on_the_scheduler) == []


class _RefusedOnWorkers(BaseEstimator):
    """A fitted estimator that unpickles in the process that made it, and fails to on a
    worker."""

    def __init__(self, pid):
        self.pid = pid

    def fit(self, X=None, y=None):
        self.fitted_ = True
        return self

    def __setstate__(self, state):
        if state["pid"] != os.getpid():
            raise RuntimeError("cannot be unpickled here")
        super().__setstate__(state)


def test_a_plugin_the_workers_cannot_set_up_is_withdrawn(dask_client):
    """Else the scheduler keeps it and gives it to every worker that joins later."""
    with pytest.raises(Exception, match="cannot be unpickled here"):
        with sent_once(_RefusedOnWorkers(os.getpid()).fit(), dask_client):
            pass
    assert _RefusedOnWorkers not in copyreg.dispatch_table
    assert dask_client.run_on_scheduler(_plugins_on_the_scheduler) == []


def _wait_for_exactly(client, n, timeout=120):
    deadline = time.monotonic() + timeout
    while len(client.scheduler_info(n_workers=-1)["workers"]) != n:
        assert time.monotonic() < deadline, f"the cluster did not reach {n} workers"
        time.sleep(0.2)


def test_a_worker_that_joins_during_the_block_holds_the_network(search_setup, dask_client):
    """Dask gives registered plugins to a worker when it joins, before it runs a task."""
    frozen, _, _, _ = search_setup
    cluster = dask_client.cluster
    # a nanny writes its workers' settings (OMP_NUM_THREADS=1, ...) into this process's
    # environment, which later tests' subprocesses would inherit
    with environment_kept():
        try:
            with sent_once(frozen, dask_client) as key:
                cluster.scale(3)
                _wait_for_exactly(dask_client, 3)
                # a task on each worker: what the worker holds when it runs one
                workers = list(dask_client.scheduler_info(n_workers=-1)["workers"])
                held = [dask_client.submit(_held_here, key, workers=[w], pure=False,
                                           allow_other_workers=False).result()
                        for w in workers]
        finally:
            cluster.scale(2)
            _wait_for_exactly(dask_client, 2)
    assert len(held) == 3 and all(held)
    assert not any(dask_client.run(_held_here, key).values())


def _held_type(key):
    from skgradunc._worker_holder import held
    return type(held(key).estimator).__name__


def test_a_network_holding_one_another_block_sends(search_setup, dask_client):
    """The outer object is sent whole: its copy outlives the inner one's block."""
    frozen, _, _, _ = search_setup
    net = frozen.estimator
    with ExitStack() as outer_open:
        with sent_once(net, dask_client):
            outer_key = outer_open.enter_context(sent_once(frozen, dask_client))
        assert set(dask_client.run(_held_type, outer_key).values()) == {type(net).__name__}


class _FailingUnregister:
    """A client whose unregistering fails (a scheduler gone away)."""

    def __init__(self, client):
        self._client = client

    def __getattr__(self, name):
        return getattr(self._client, name)

    def unregister_worker_plugin(self, key):
        self._client.unregister_worker_plugin(key)
        raise OSError("the scheduler went away")


def test_an_unregistering_error_is_raised_unless_the_block_failed(search_setup, dask_client):
    frozen, _, _, _ = search_setup
    with pytest.raises(OSError, match="went away"):
        with sent_once(frozen, _FailingUnregister(dask_client)):
            pass
    with pytest.raises(KeyError, match="the block's own"):
        with sent_once(frozen, _FailingUnregister(dask_client)):
            raise KeyError("the block's own")
    assert FrozenEstimator not in copyreg.dispatch_table


def test_an_asynchronous_client_is_refused(search_setup):
    """Its register_plugin would return a coroutine nobody awaits: nothing registered."""
    with pytest.raises(ValueError, match="synchronous distributed.Client"):
        with sent_once(search_setup[0], SimpleNamespace(asynchronous=True)):
            pass
    assert FrozenEstimator not in copyreg.dispatch_table


def test_a_reducer_over_ours_that_chains_back_does_not_recurse(search_setup, dask_client):
    frozen, _, _, _ = search_setup
    other, third = FrozenEstimator(frozen.estimator), FrozenEstimator(frozen.estimator)
    try:
        with sent_once(frozen, dask_client):
            chained = copyreg.dispatch_table[FrozenEstimator]     # ours
            copyreg.dispatch_table[FrozenEstimator] = lambda obj: chained(obj)  # theirs
        with sent_once(other, dask_client) as key:              # theirs is now "previous"
            assert key in pickle.dumps(other).decode("latin-1")
            assert type(pickle.loads(pickle.dumps(third))) is FrozenEstimator
    finally:
        copyreg.dispatch_table.pop(FrozenEstimator, None)


def test_an_unfitted_network_is_refused(dask_client):
    """On the workers it is frozen: it would never be trained there."""
    from skgradunc import CNNClassifier
    with pytest.raises(ValueError, match="CNNClassifier is not fitted: fit it first"):
        with sent_once(CNNClassifier(), dask_client):
            pass
    assert dask_client.run_on_scheduler(_plugins_on_the_scheduler) == []
