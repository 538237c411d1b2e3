"""
Sérsic parameters of simulated galaxies with a CNN
==================================================

Simulate HST/CANDELS F160W-like galaxies with GalSim, train
`~astromorphnet.SersicCNNRegressor` (the reference thesis's "sim-only"
network, here its light CPU variant), and compare predicted with true
parameters.
"""

import os

import matplotlib.pyplot as plt

from astromorphnet import SersicCNNRegressor
from astromorphnet.metrics import r2_table
from astromorphnet.simulation import simulate_galaxies
from astromorphnet.visualization import plot_predicted_vs_true

scale = float(os.environ.get("ASTROMORPHNET_EXAMPLE_SCALE", 1.0))
n = max(100, int(1000 * scale))
epochs = max(3, int(40 * scale))

# %%
# Simulate a survey: magnitudes 17-24 AB, radii up to 10 pixels on 48×48 stamps.
images, truth = simulate_galaxies(n, stamp_size=48, random_state=1,
                                  ranges={"mag": (17, 24), "r_eff": (1.5, 10)})
train, test = slice(0, int(0.8 * n)), slice(int(0.8 * n), n)

# %%
# Train; the catalog comes back as a QTable with units.
reg = SersicCNNRegressor("light", learning_rate=1e-3, max_epochs=epochs,
                         zeropoint=truth.meta["zeropoint"],
                         pixel_scale=truth.meta["pixel_scale"], random_state=0)
reg.fit(images[train], truth[train])
catalog = reg.predict(images[test])
print(catalog[:5])
print(r2_table(truth[test], {"sim-only": catalog}))

# %%
# Predicted against true values, with the 1:1 line and R² in each title;
# ``r_eff`` and ``sersic_n`` on logarithmic axes.
fig, axes = plt.subplots(2, 2, figsize=(9, 8), layout="constrained")
plot_predicted_vs_true(truth[test], catalog, axes=axes)
