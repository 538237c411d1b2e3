"""Cutouts from mosaics (photutils segmentation) and catalog selection helpers."""

from ._extract import *  # noqa: F403
from ._extract import __all__ as _extract_all
from ._select import *  # noqa: F403
from ._select import __all__ as _select_all

__all__ = _extract_all + _select_all
