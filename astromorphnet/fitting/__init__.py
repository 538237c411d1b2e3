"""Classical PSF-convolved single-Sérsic fits (GALFIT's role): labels and a baseline.

GalSim is imported only when a fit is run.
"""

from ._sersic_fit import *  # noqa: F403
from ._sersic_fit import __all__ as _sersic_fit_all
from ._labels import *  # noqa: F403
from ._labels import __all__ as _labels_all

__all__ = _sersic_fit_all + _labels_all
