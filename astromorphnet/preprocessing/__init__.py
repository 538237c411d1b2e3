"""Cutout preprocessing transformers (scikit-learn compatible)."""

from ._transformers import *  # noqa: F403
from ._transformers import __all__
