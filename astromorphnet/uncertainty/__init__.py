"""Per-galaxy uncertainties: predictive distributions and conformal calibration.

NumPy and scikit-learn only; the networks that produce the distributions
live in `astromorphnet.models` (likelihood heads and ensembles).
"""

from ._conformal import *  # noqa: F403
from ._conformal import __all__ as _conformal_all
from ._distribution import *  # noqa: F403
from ._distribution import __all__ as _distribution_all

__all__ = _distribution_all + _conformal_all
