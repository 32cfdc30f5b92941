"""GAIADetector against the authors' own code on the same tensors.

GAIA-OOD (JGEthanChen/GAIA-OOD, checked at 91c287c) carries no licence, so its code is
not copied into this repository's tests (they check the published formulas by a
per-sample float64 autograd loop instead); this script runs the authors' ``cal_method.py``
and ``hook.py`` from a checkout of theirs::

    python benchmarks/check_gaia_reference.py /path/to/GAIA-OOD

and prints the largest relative difference per variant (float32 both sides).
"""

import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from test_activation_detectors import _images, _network  # noqa: E402

from skgradunc.detectors import GAIADetector  # noqa: E402


def main(checkout):
    sys.path.insert(0, str(checkout))
    import cal_method
    import hook
    x = _images(64)
    for variant, layers in [("A", ["bn1", "conv2", "relu2"]), ("Z", ["bn1", "conv2"])]:
        net = _network()
        for m in net.modules():   # as the authors' ResNets: ReLUs in place
            if isinstance(m, torch.nn.ReLU):
                m.inplace = True
        hooks = [hook.Grad_all_hook(net.get_submodule(name)) for name in layers]
        net.get_submodule(layers[-1]).register_forward_hook(
            lambda m, a, o, net=net: setattr(net, "before_head_data", o))
        method = cal_method.cal_grad_value if variant == "A" else cal_method.cal_zero
        theirs = -method(net, torch.from_numpy(x), "cpu", hooks).detach().double().numpy()
        ours = GAIADetector(_network(), layers=layers, variant=variant,
                            device="cpu").fit(x).score_samples(x)
        print(f"GAIA-{variant}: largest relative difference "
              f"{np.max(np.abs(ours - theirs) / np.abs(theirs)):.1e} over {len(x)} inputs")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
