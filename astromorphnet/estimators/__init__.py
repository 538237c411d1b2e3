"""scikit-learn estimators: cutouts in, Sérsic catalogs out (Keras imported lazily)."""

from ._base import *  # noqa: F403
from ._base import __all__ as _base_all
from ._sersic import *  # noqa: F403
from ._sersic import __all__ as _sersic_all

__all__ = _base_all + _sersic_all
