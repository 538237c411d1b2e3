"""Simulated galaxy training sets (GalSim, imported lazily)."""

from ._galsim import *  # noqa: F403
from ._galsim import __all__
