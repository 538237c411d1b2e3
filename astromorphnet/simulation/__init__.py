"""Simulated survey cutouts: parameters, survey configurations, fast rendering, HDF5 sets.

GalSim is imported only when a galaxy, PSF or noise field is drawn.
"""

from ._hdf5 import *  # noqa: F403
from ._hdf5 import __all__ as _hdf5_all
from ._parameters import *  # noqa: F403
from ._parameters import __all__ as _parameters_all
from ._randomised import *  # noqa: F403
from ._randomised import __all__ as _randomised_all
from ._real_like import *  # noqa: F403
from ._real_like import __all__ as _real_like_all
from ._render import *  # noqa: F403
from ._render import __all__ as _render_all
from ._simulate import *  # noqa: F403
from ._simulate import __all__ as _simulate_all
from ._survey import *  # noqa: F403
from ._survey import __all__ as _survey_all

__all__ = (_parameters_all + _survey_all + _render_all + _simulate_all + _hdf5_all + _real_like_all
           + _randomised_all)
