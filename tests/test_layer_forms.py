"""Which exact form each layer's per-sample weight gradient takes (the speed and memory
choices; the values are checked against the reference in test_gradient_reference.py)."""

import torch
import torchvision

from skgradunc import PaperCNN
from skgradunc._layers import registered_rule


def weight_gradient_form(layer, x, grad_out):
    """The form ("outer", "low_rank", "shifted", "dense") of a Linear's or convolution's
    per-sample weight gradient, by its rule."""
    return registered_rule(layer).form(layer, x, grad_out)


def bytes_per_sample(layer, x, grad_out):
    return registered_rule(layer).bytes_per_sample(layer, x, grad_out)


def forms(module, x):
    """{layer name: (form, bytes per sample)} of every Linear and convolution."""
    found = {}

    def record(name):
        def hook(layer, inputs, output):
            grad_out = torch.zeros_like(output)  # only shapes decide the form
            found[name] = (weight_gradient_form(layer, inputs[0], grad_out),
                           bytes_per_sample(layer, inputs[0], grad_out))
        return hook
    handles = [m.register_forward_hook(record(name)) for name, m in module.named_modules()
               if isinstance(m, (torch.nn.Linear, torch.nn.Conv1d, torch.nn.Conv2d))]
    with torch.no_grad():
        module.eval()(x)
    for handle in handles:
        handle.remove()
    return found


def test_paper_cnn_layers_take_the_measured_forms():
    found = forms(PaperCNN(), torch.rand(2, 1, 28, 28))
    # conv1 has one input channel, too few for the per-offset products; conv3's 7-wide
    # rows would waste more than a quarter of them on the 2 zero columns a row adds
    assert {name: form for name, (form, _) in found.items()} == {
        "conv1": "dense", "conv2": "shifted", "conv3": "dense", "dense": "outer"}


def test_resnet18_on_small_images_keeps_its_deep_layers_factored():
    found = forms(torchvision.models.resnet18(num_classes=10), torch.rand(1, 3, 32, 32))
    assert found["layer4.1.conv2"][0] == "outer"           # 1x1 output: never materialised
    assert found["layer3.1.conv2"][0] == "low_rank"        # 2x2 output: r x r contractions
    assert found["layer1.0.conv1"][0] == "shifted"         # 8x8, 64 channels, stride 1
    assert found["conv1"][0] == "dense"                    # 3 input channels, stride 2
    assert found["fc"][0] == "outer"
    # a factored gradient costs its factors, far less than the materialised a*b values
    materialised = 4 * 3 * 512 * 512 * 9
    assert found["layer4.1.conv2"][1] < materialised / 100


def test_a_linear_over_a_sequence_is_low_rank_or_dense_by_its_length():
    layer = torch.nn.Linear(64, 64)
    short, long = torch.rand(2, 2, 64), torch.rand(2, 50, 64)
    assert weight_gradient_form(layer, short, layer(short)) == "low_rank"
    assert weight_gradient_form(layer, long, layer(long)) == "dense"
