"""Cutouts from mosaics (photutils segmentation), neighbour masks and catalog selection."""

from ._extract import *  # noqa: F403
from ._extract import __all__ as _extract_all
from ._neighbours import *  # noqa: F403
from ._neighbours import __all__ as _neighbours_all
from ._select import *  # noqa: F403
from ._select import __all__ as _select_all

__all__ = _extract_all + _neighbours_all + _select_all
