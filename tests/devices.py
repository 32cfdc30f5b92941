"""Where the engine's reference tests run: ``SKGRADUNC_TEST_DEVICE`` (default ``cpu``).

``SKGRADUNC_TEST_DEVICE=cuda pytest tests/test_gradient_reference.py tests/test_layer_local.py``
runs every float64-reference check with the features computed on the GPU (the reference
itself stays on the CPU in float64); conftest.py refuses the setting where torch sees no GPU.
"""

import os

DEVICE = os.environ.get("SKGRADUNC_TEST_DEVICE", "cpu")
