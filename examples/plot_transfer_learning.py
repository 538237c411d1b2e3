"""
Transfer learning: from simulations to real galaxies
====================================================

A network trained on simulated galaxies measures simulated galaxies well and
real ones badly: real cutouts have other PSFs, correlated noise, star-forming
knots, neighbours and sky residuals that the simulations lack (the *domain
shift*).  The reference thesis's first cure is transfer learning: start from
the simulation-trained ("sim-only") network and fine-tune its weights, with
a small learning rate, on a few hundred real galaxies labelled by a
classical fit.

We have no real data here, so `~astromorphnet.simulation.simulate_real_like`
provides a **simulated stand-in for real galaxies**: a PSF varying around the model,
COSMOS correlated noise, knots, neighbours, sky gradients and cosmic rays,
and the reference thesis's real-galaxy parameter distribution.  Its labels
are exact, which real data never give, so the numbers below illustrate the
method; they are not results on real galaxies.
"""

import os

import matplotlib.pyplot as plt

from astromorphnet import SersicCNNRegressor, TransferLearningRegressor
from astromorphnet.cutouts import mask_neighbours
from astromorphnet.metrics import r2_table
from astromorphnet.simulation import simulate_galaxies, simulate_real_like
from astromorphnet.visualization import plot_predicted_vs_true

scale = float(os.environ.get("ASTROMORPHNET_EXAMPLE_SCALE", 1.0))
n_source = max(160, int(1200 * scale))
n_target = max(80, int(600 * scale))
epochs = max(2, int(20 * scale))
fine_tune_epochs = max(2, int(15 * scale))

# %%
# Two domains
# -----------
# The source domain is the training simulation (HST/CANDELS F160W preset);
# the target domain is the real-like stand-in.  Both use 48×48 stamps.  Of
# the target galaxies, 60 % are the labelled set for fine-tuning and 40 % the
# test set.
source, source_truth = simulate_galaxies(n_source, stamp_size=48, random_state=0,
                                         ranges={"mag": (16, 25), "r_eff": (1.3, 12, "log")})
target, target_truth = simulate_real_like(n_target, stamp_size=48, random_state=1,
                                          ranges={"mag": (16, 24), "r_eff": (1.5, 10, "log")})
# Survey pipelines mask the neighbours of each galaxy; cutouts without a
# segmentation map are segmented one by one (photutils), as here.
source, target = mask_neighbours(source), mask_neighbours(target)
s_train, s_test = slice(0, int(0.8 * n_source)), slice(int(0.8 * n_source), n_source)
t_train, t_test = slice(0, int(0.6 * n_target)), slice(int(0.6 * n_target), n_target)

# %%
# Sim-only
# --------
# The light CPU network, trained on simulations only.
common = dict(zeropoint=source_truth.meta["zeropoint"],
              pixel_scale=source_truth.meta["pixel_scale"], random_state=0)
sim_only = SersicCNNRegressor("light", learning_rate=1e-3, batch_size=32, max_epochs=epochs,
                              patience=5, **common)
sim_only.fit(source[s_train], source_truth[s_train])
print(f"sim-only: {sim_only.n_epochs_} epochs")

# %%
# Transfer learning
# -----------------
# `~astromorphnet.TransferLearningRegressor` copies the sim-only network and
# trains all its layers further on the labelled target galaxies, keeping the
# pixel stretch and target scaling it learnt on the simulations (the sim-only
# estimator itself is not modified).  ``trainable="head"`` would train the
# dense head only, useful with very few labelled galaxies.  Here the labels
# are the stand-in's exact ones; with real data they come from a classical
# fit (see the example comparing `~astromorphnet.fitting.fit_sersic` with the
# CNN).
transfer = TransferLearningRegressor(sim_only, learning_rate=3e-4, max_epochs=fine_tune_epochs,
                                     **common)
transfer.fit(target[t_train], target_truth[t_train])
print(f"fine-tuned on {len(target[t_train])} labelled target galaxies")

# %%
# R² per parameter
# ----------------
# The first table is the sim-only network on held-out simulations, the
# second both networks on the held-out real-like galaxies: the drop from the
# first to the second is the domain shift, and the transfer-learning row
# shows how much of it fine-tuning wins back.  Small training sets and few
# epochs make a quick run's values noisy; a larger
# ``ASTROMORPHNET_EXAMPLE_SCALE`` gives steadier ones.
catalogs = {"sim-only": sim_only.predict(target[t_test]),
            "transfer learning": transfer.predict(target[t_test])}
for title, table in (
        ("R² on the simulated source test set",
         r2_table(source_truth[s_test], {"sim-only": sim_only.predict(source[s_test])})),
        ("R² on the real-like target test set", r2_table(target_truth[t_test], catalogs))):
    table.round(3)
    print(f"{title}\n{table}\n")

# %%
# Predicted against true values on the target test set; the dashed line is
# the 1:1 relation, the legend gives each model's R².
fig, axes = plt.subplots(2, 2, figsize=(9, 8), layout="constrained")
plot_predicted_vs_true(target_truth[t_test], catalogs, axes=axes, s=8, alpha=0.6)
