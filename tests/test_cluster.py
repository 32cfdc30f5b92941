"""Gradient features of a dask array, block by block (skgradunc.cluster), on dask's threads
and on a LocalCluster of worker processes; and transform from several threads at once."""

from concurrent.futures import ThreadPoolExecutor

import dask.array as da
import numpy as np
import pytest
from sklearn.frozen import FrozenEstimator
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from skgradunc import GradientMetricTransformer
from skgradunc.cluster import transform_blocks
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
    """transform hooks into the network while it runs: concurrent calls must not see each
    other's hooks (they did, before the per-network lock)."""
    grad, X = fitted
    parts = [X[i::4] for i in range(4)]
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(grad.transform, parts))
    for part, result in zip(parts, results):
        assert_features_close(result, grad.transform(part), grad.get_feature_names_out())


def test_blocks_on_a_local_cluster_of_processes(fitted, dask_client):
    grad, X = fitted
    lazy = transform_blocks(grad, da.from_array(X, chunks=(50, 1, 28, 28)))
    features = dask_client.compute(lazy).result()
    assert len(dask_client.run(lambda: True)) == 2
    assert_features_close(features, grad.transform(X), grad.get_feature_names_out())
