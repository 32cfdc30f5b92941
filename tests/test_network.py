"""The network adapter (skgradunc/_network.py): what wraps what, eval mode given back,
the parameters gradients are taken of, one lock per network."""

import threading

import numpy as np
import pytest
import torch
from skorch import NeuralNetClassifier
from sklearn.frozen import FrozenEstimator
from sklearn.linear_model import LogisticRegression

from skgradunc._network import (evaluation_mode, find_module, is_fitted, network_lock,
                                sample_shape, trainable_parameters)

nn = torch.nn


def _net():
    return nn.Sequential(nn.Linear(3, 4), nn.Dropout(0.5), nn.Linear(4, 2))


def test_the_module_is_found_through_wrappers_and_an_unfitted_net_refused():
    module = _net()
    fitted = NeuralNetClassifier(module, max_epochs=0).initialize()
    assert find_module(module) is module
    assert find_module(FrozenEstimator(fitted)) is fitted.module_
    with pytest.raises(TypeError, match="cannot find a torch module in NeuralNetClassifier"):
        find_module(NeuralNetClassifier(_net, max_epochs=1))
    assert is_fitted(module) and is_fitted(fitted) and is_fitted(FrozenEstimator(fitted))
    assert not is_fitted(NeuralNetClassifier(_net)) and not is_fitted(LogisticRegression())
    assert is_fitted(LogisticRegression().fit(np.eye(2), [0, 1]))


def test_sample_shape_comes_from_the_module_or_what_the_estimator_learned():
    class Shaped(nn.Module):
        input_shape = (1, 4, 4)
    assert sample_shape(None, Shaped()) == (1, 4, 4)

    class Learned:
        input_shape_ = (3, 8, 8)
    assert sample_shape(FrozenEstimator(Learned())) == (3, 8, 8)
    assert sample_shape(object()) is None


def test_evaluation_mode_gives_each_module_its_own_flag_back():
    module = _net().train()
    module[1].eval()   # a mixed state, as fine-tuning leaves it
    before = [m.training for m in module.modules()]
    with evaluation_mode(module):
        assert not any(m.training for m in module.modules())
    assert [m.training for m in module.modules()] == before
    with pytest.raises(RuntimeError), evaluation_mode(module):
        raise RuntimeError("inside")
    assert [m.training for m in module.modules()] == before


def test_trainable_parameters_are_those_requiring_grad_or_all_of_a_frozen_module():
    module = _net()
    module[0].requires_grad_(False)
    assert trainable_parameters(module) == ["2.weight", "2.bias"]
    module.requires_grad_(False)
    assert trainable_parameters(module) == ["0.weight", "0.bias", "2.weight", "2.bias"]
    with pytest.raises(ValueError, match="Dropout has no parameters"):
        trainable_parameters(nn.Dropout())


def test_one_lock_per_network_shared_across_threads():
    module, other = _net(), _net()
    assert network_lock(module) is network_lock(module)
    assert network_lock(module) is not network_lock(other)
    seen = []
    threads = [threading.Thread(target=lambda: seen.append(network_lock(module)))
               for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(lock is network_lock(module) for lock in seen)
