"""Metrics of Sérsic parameter measurements."""

from ._regression import *  # noqa: F403
from ._regression import __all__
