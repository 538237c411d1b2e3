"""Metrics of Sérsic parameter measurements."""

from ._morphology import *  # noqa: F403
from ._morphology import __all__ as _morphology_all
from ._regression import *  # noqa: F403
from ._regression import __all__ as _regression_all
from ._uncertainty import *  # noqa: F403
from ._uncertainty import __all__ as _uncertainty_all

__all__ = _regression_all + _morphology_all + _uncertainty_all
