"""
Per-galaxy errors, and calibrating them on the target survey
=============================================================

Every estimator gives each galaxy and parameter a 1σ error (``<param>_err``)
and a central interval (``<param>_lo``/``<param>_hi``): by default the
network has a Laplace likelihood head, which predicts a location and a
scale per parameter.  Errors learnt on simulations are honest on
simulations, but not on a survey the simulations do not match: there they
are typically over-confident.  ``calibrate`` fixes the stated coverage on
the survey by conformal prediction, from a few hundred labelled galaxies
of it, or, without any label, from held-out simulations weighted to look
like the survey (weighted conformal prediction).

As in the other examples, `~astromorphnet.simulation.simulate_real_like`
provides a **simulated stand-in for real galaxies**, with exact labels.
"""

import copy
import os

import matplotlib.pyplot as plt

from astromorphnet import SersicCNNRegressor
from astromorphnet.estimators import stack_domains
from astromorphnet.metrics import calibration_curve, coverage_table, error_prediction
from astromorphnet.simulation import simulate_galaxies, simulate_real_like
from astromorphnet.visualization import plot_calibration_curve

scale = float(os.environ.get("ASTROMORPHNET_EXAMPLE_SCALE", 1.0))
n_train, n_held_out = max(200, int(2000 * scale)), max(100, int(400 * scale))
n_target = max(200, int(1200 * scale))
epochs = max(2, int(15 * scale))

# %%
# Train on simulations
# --------------------
# Simulations of the HST/CANDELS F160W preset; a held-out part is kept for
# the label-free calibration below.
ranges = {"mag": (17, 24), "r_eff": (1.5, 8, "log"), "sersic_n": (0.5, 5)}
sims, truth = simulate_galaxies(n_train + n_held_out, stamp_size=32, ranges=ranges,
                                random_state=0)
reg = SersicCNNRegressor("light", learning_rate=1e-3, batch_size=32, max_epochs=epochs,
                         patience=5, zeropoint=truth.meta["zeropoint"], random_state=0)
reg.fit(sims[:n_train], truth[:n_train])

# %%
# The target survey: half to calibrate, half to test.
target, target_truth = simulate_real_like(n_target, stamp_size=32, ranges=ranges,
                                          random_state=1)
half = n_target // 2
catalog = reg.predict(target[half:])
catalog["mag", "mag_err", "r_eff", "r_eff_lo", "r_eff_hi", "sersic_n", "sersic_n_err"][:5]

# %%
# How honest are the errors?
# --------------------------
# The coverage table gives the fraction of true values inside the 68 % and
# 95 % intervals (ideal: 0.68 and 0.95) and the intervals' mean width.
dist = reg.predict_distribution(target[half:])
coverage_table(dist, target_truth[half:])

# %%
# Calibrate on labelled survey galaxies
# -------------------------------------
# With labels for some survey galaxies (from a classical fit of the best
# ones, say), split-conformal calibration makes the stated coverage hold on
# galaxies like them.
before = calibration_curve(dist, target_truth[half:])
reg.calibrate(target[:half], target_truth[:half])
calibrated = reg.predict_distribution(target[half:])
coverage_table(calibrated, target_truth[half:])

# %%
# Without survey labels
# ---------------------
# Labelled held-out simulations and *unlabelled* survey galaxies: a domain
# classifier on the network's features weighs each simulation by how
# survey-like it looks.
X, y, domain = stack_domains(sims[n_train:], truth[n_train:], target[:half])
unlabelled = copy.deepcopy(reg).calibrate(X, y, sample_domain=domain)
weighted = unlabelled.predict_distribution(target[half:])

fig, ax = plt.subplots(figsize=(5.5, 5))
plot_calibration_curve({"as trained": before,
                        "calibrated (labelled)": calibration_curve(calibrated,
                                                                   target_truth[half:]),
                        "calibrated (no labels)": calibration_curve(weighted,
                                                                    target_truth[half:])},
                       ax=ax)
ax.set_title("Target survey: stated vs observed coverage")

# %%
# The Euclid morphology challenge's "error prediction": the fraction of true
# values within ±1σ, per bin of true magnitude (ideal 0.683).
error_prediction(reg.predict(target[half:]), target_truth[half:])
