import math

import pytest
import torch

from skgradunc.nets import PaperCNN


def n_params(module):
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize("in_channels, image_size, n_classes", [
    (1, 28, 10), (3, 32, 10), (1, (20, 36), 26), (2, 4, 2)])
def test_output_shape(in_channels, image_size, n_classes):
    net = PaperCNN(in_channels, image_size, n_classes)
    h, w = (image_size, image_size) if isinstance(image_size, int) else image_size
    assert net(torch.rand(5, in_channels, h, w)).shape == (5, n_classes)


def test_parameter_count_matches_the_paper_architecture():
    # conv1: 1*16*9+16, conv2 and conv3: 16*16*9+16, dense: 16*7*7*10+10 (two poolings 28->7)
    assert n_params(PaperCNN()) == 160 + 2 * 2320 + 7850
    # 'valid' padding: 28 -conv-> 26 -pool-> 13 -conv-> 11 -pool-> 5 -conv-> 3
    assert n_params(PaperCNN(padding="valid")) == 160 + 2 * 2320 + (16 * 3 * 3 * 10 + 10)


def test_layer_names_and_layout():
    net = PaperCNN()
    names = [name for name, _ in net.named_parameters()]
    assert names == ["conv1.weight", "conv1.bias", "conv2.weight", "conv2.bias",
                     "conv3.weight", "conv3.bias", "dense.weight", "dense.bias"]
    assert net.activation.negative_slope == 0.1
    assert net.dropout.p == 0.33
    assert all(conv.kernel_size == (3, 3) and conv.out_channels == 16 and conv.stride == (1, 1)
               for conv in (net.conv1, net.conv2, net.conv3))


def test_glorot_uniform_weights_and_zero_biases():
    net = PaperCNN()
    for layer in (net.conv1, net.conv2, net.conv3, net.dense):
        fan_out, fan_in = layer.weight.shape[0], layer.weight.shape[1]
        receptive = layer.weight[0, 0].numel()
        bound = math.sqrt(6.0 / ((fan_in + fan_out) * receptive))
        assert layer.weight.abs().max() <= bound
        assert layer.weight.abs().max() > 0.8 * bound  # uniform, not a narrower default
        assert torch.count_nonzero(layer.bias) == 0


def test_dropout_only_in_train_mode():
    net = PaperCNN().eval()
    x = torch.rand(3, 1, 28, 28)
    assert torch.equal(net(x), net(x))
    net.train()
    assert not torch.equal(net(x), net(x))


@pytest.mark.parametrize("image_size, padding", [(3, "same"), ((28, 3), "same"), (9, "valid")])
def test_too_small_image_is_refused(image_size, padding):
    with pytest.raises(ValueError, match="too small"):
        PaperCNN(image_size=image_size, padding=padding)


def test_wrong_input_shape_names_expected_shape():
    with pytest.raises(ValueError, match=r"expects .*\(1, 28, 28\), got \(3, 28, 28\)"):
        PaperCNN()(torch.rand(2, 3, 28, 28))


@pytest.mark.parametrize("kwargs", [{"padding": "full"}, {"n_classes": 1}, {"in_channels": 0}])
def test_bad_constructor_arguments(kwargs):
    with pytest.raises(ValueError):
        PaperCNN(**kwargs)
