"""Sérsic catalogs: target definitions, label conversion, quality flags, writing."""

from ._flags import *  # noqa: F403
from ._flags import __all__ as _flags_all
from ._io import *  # noqa: F403
from ._io import __all__ as _io_all
from ._targets import *  # noqa: F403
from ._targets import __all__ as _targets_all

__all__ = _flags_all + _targets_all + _io_all
