"""Plots of Sérsic parameter measurements.

matplotlib is an optional dependency, imported when a plot is drawn:
``import astromorphnet.visualization`` stays light.  The plots are
`matplotlib.figure.Figure` objects made without `matplotlib.pyplot`.
"""

from ._plots import *  # noqa: F403
from ._plots import __all__
