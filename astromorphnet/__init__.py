"""astromorphnet: galaxy structure from image cutouts with convolutional networks.

Heavy dependencies (TensorFlow/Keras, GalSim) are imported only when a
network is trained or loaded, or a galaxy drawn; ``import astromorphnet`` is
light.
"""

import importlib
from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("astromorphnet")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0+unknown"

#: Public names importable from the top level, and the subpackage of each.
_LAZY = {
    "SersicCNNRegressor": "estimators",
    "TransferLearningRegressor": "estimators",
    "AdversarialDARegressor": "estimators",
    "stack_domains": "estimators",
    "load": "estimators",
    "r2_table": "metrics",
    "morphology_metrics": "metrics",
    "simulate_galaxies": "simulation",
    "simulate_real_like": "simulation",
    "fit_sersic": "fitting",
    "label_with_fit": "fitting",
    "measure": "pipeline",
    "load_pretrained": "pretrained",
    "list_pretrained": "pretrained",
    "run_demo": "demo",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name):
    # PEP 562: import subpackages on first use to keep ``import astromorphnet`` light.
    if name in _LAZY:
        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
