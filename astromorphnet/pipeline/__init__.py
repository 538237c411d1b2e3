"""From survey images to a Sérsic catalog: `measure`, tiled, on one machine or a Dask cluster.

Dask is imported only when `measure` is given a ``client``.
"""

from ._measure import *  # noqa: F403
from ._measure import __all__ as _measure_all

__all__ = list(_measure_all)
