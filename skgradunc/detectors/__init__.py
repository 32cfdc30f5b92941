"""The other gradient detectors as their authors define them, on this package's engine.

* :func:`gradnorm_score` - GradNorm (Huang, Geng & Li 2021): the L1 norm of the gradient
  of KL(uniform || softmax(z / T)) with respect to the last layer's weight. Higher means
  in-distribution, as this package's confidences.
* :func:`lee_alregib_detector` - Lee & AlRegib 2020: squared L2 norms of the gradient of
  the binary cross-entropy against the all-ones confounding label, one per parameter
  tensor, fed to a binary detector of two fully connected layers trained on
  in-distribution against unfamiliar samples; an sklearn Pipeline to fit.

Fitted on in-distribution data alone, in scikit-learn's outlier-detector convention
(``score_samples`` higher = more typical, ``predict`` +1 / -1 at a chosen in-distribution
rate), on any features, e.g. after :class:`~skgradunc.GradientMetricTransformer`:

* :class:`MahalanobisDetector` - class-conditional Gaussians with a tied, shrunk
  covariance (Lee et al. 2018);
* :class:`KNNDetector` - the distance to the k-th nearest training sample on normalised
  features (Sun et al. 2022).

On the network's inputs, from layers' outputs and their per-sample gradients (activation
gradients), in the same convention:

* :class:`NACDetector` - NAC-UE's neuron activation coverage (Liu et al. 2024);
* :class:`GAIADetector` - GAIA-A and GAIA-Z, gradient abnormality of the attributions
  (Chen et al. 2023).
"""

from ._gaia import GAIADetector
from ._gradnorm import gradnorm_score, last_layer_weight
from ._knn import KNNDetector
from ._lee_alregib import lee_alregib_detector
from ._mahalanobis import MahalanobisDetector
from ._nac import NACDetector, nac_bin_edges

__all__ = ["gradnorm_score", "lee_alregib_detector", "last_layer_weight", "KNNDetector",
           "MahalanobisDetector", "NACDetector", "GAIADetector", "nac_bin_edges"]
