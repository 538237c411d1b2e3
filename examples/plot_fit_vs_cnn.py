"""
Classical Sérsic fits and the CNN
=================================

The classical way to measure a galaxy's structure is to fit a
PSF-convolved Sérsic model to its pixels (GALFIT's job), which
`~astromorphnet.fitting.fit_sersic` does by least squares.  A CNN learns
the same measurement from simulations and then needs a single forward pass
per galaxy.  This example compares the two on the same cutouts, in speed
and accuracy, and then uses the fits the way the reference thesis does: as
labels for real galaxies, to fine-tune the simulation-trained network with
`~astromorphnet.TransferLearningRegressor`.
"""

import os
import time

import matplotlib.pyplot as plt
import numpy as np

from astromorphnet import SersicCNNRegressor, TransferLearningRegressor
from astromorphnet.catalog import labels_to_array
from astromorphnet.cutouts import select_magnitude
from astromorphnet.fitting import FitFlag, fit_sersic
from astromorphnet.metrics import r2_table
from astromorphnet.simulation import SurveyConfig, simulate_galaxies, simulate_real_like
from astromorphnet.visualization import plot_predicted_vs_true

scale = float(os.environ.get("ASTROMORPHNET_EXAMPLE_SCALE", 1.0))
n_train = max(160, int(1000 * scale))
n_compare = max(10, int(60 * scale))
n_real = max(60, int(250 * scale))
epochs = max(2, int(15 * scale))

# %%
# A CNN trained on simulations
# ----------------------------
# HST/CANDELS F160W-like galaxies on 48×48 stamps; the last ``n_compare``
# are kept aside to compare the two methods on.
survey = SurveyConfig.from_preset("CANDELS_F160W", stamp_size=48)
images, truth = simulate_galaxies(n_train + n_compare, survey, random_state=0,
                                  ranges={"mag": (16, 24), "r_eff": (1.5, 10)})
train, test = slice(0, n_train), slice(n_train, n_train + n_compare)

start = time.perf_counter()
cnn = SersicCNNRegressor("light", learning_rate=1e-3, batch_size=32, max_epochs=epochs,
                         patience=5, zeropoint=survey.zeropoint,
                         pixel_scale=survey.pixel_scale, random_state=0)
cnn.fit(images[train], truth[train])
train_time = time.perf_counter() - start

# %%
# Fit and CNN on the same cutouts
# -------------------------------
# Passing the `~astromorphnet.simulation.SurveyConfig` gives the fit the
# survey's PSF, pixel scale and zeropoint.  Each fit starts from the image
# moments and renders the model some tens of times; the network's
# prediction is one batched forward pass (the first call, which builds
# Keras's prediction function, is left out of the timing).
start = time.perf_counter()
fits = fit_sersic(images[test], survey, n_jobs=1)
fit_time = (time.perf_counter() - start) / n_compare

cnn.predict(images[:2])
start = time.perf_counter()
predictions = cnn.predict(images[test])
cnn_time = (time.perf_counter() - start) / n_compare

print(f"Sérsic fit: {1e3 * fit_time:8.2f} ms per galaxy (one process)")
print(f"CNN:        {1e3 * cnn_time:8.2f} ms per galaxy, after {train_time:.0f} s of training")
print(f"fit flags: {np.count_nonzero(fits['fit_flag'] == 0)} of {n_compare} clean fits")

# %%
# The fit's own flags (`~astromorphnet.fitting.FitFlag`) tell when it did not
# converge or ended on a bound; rows it could not fit at all are NaN and are
# left out of the comparison.
ok = np.isfinite(labels_to_array(fits, allow_nan=True)).all(axis=1)
compare = {"Sérsic fit": fits[ok], "CNN": predictions[ok]}
print(r2_table(truth[test][ok], compare))

fig, axes = plt.subplots(2, 2, figsize=(9, 8), layout="constrained")
plot_predicted_vs_true(truth[test][ok], compare, axes=axes, s=12, alpha=0.7)

# %%
# Labelling "real" galaxies with the fit
# --------------------------------------
# Real galaxies have no true labels; the reference thesis labels them with a
# classical fit and fine-tunes the simulation-trained network on them.
# `~astromorphnet.simulation.simulate_real_like` stands in for real data
# here (a **simulation** with a varying PSF, correlated noise,
# knots, neighbours and cosmic rays), so that the result can be checked
# against exact labels.  As with real data, the fit uses the nominal PSF
# model, which is not exactly the one the galaxies were imaged with, and the
# neighbours are not masked (in a mosaic,
# `~astromorphnet.cutouts.extract_cutouts` masks them).
real, real_truth = simulate_real_like(n_real, stamp_size=48, random_state=1,
                                      ranges={"mag": (16, 24), "r_eff": (1.5, 10, "log")})
labelled, held_out = slice(0, int(0.6 * n_real)), slice(int(0.6 * n_real), n_real)
real_fits = fit_sersic(real[labelled], survey, n_jobs=-1)

# %%
# As in the reference thesis, only galaxies no fainter than m = 23 (by the
# fit) are kept, where fits are reliable, and only clean fits (no
# `~astromorphnet.fitting.FitFlag` bit set).  How close the fit labels are to
# the truth bounds what fine-tuning on them can reach.
keep = select_magnitude(real_fits, 23.0) & (real_fits["fit_flag"] == 0)
print(f"{keep.sum()} of {len(real_fits)} fitted galaxies kept as labels "
      f"({np.count_nonzero(real_fits['fit_flag'] & FitFlag.AT_BOUND)} fits at a bound)")
print(r2_table(real_truth[labelled][keep], {"fit labels": real_fits[keep]}))

# %%
# Fine-tune on the fit labels, and compare with the sim-only network on the
# held-out real-like galaxies, scored against their exact labels.
transfer = TransferLearningRegressor(cnn, learning_rate=3e-4, max_epochs=epochs,
                                     zeropoint=survey.zeropoint,
                                     pixel_scale=survey.pixel_scale, random_state=0)
transfer.fit(real[labelled][keep], real_fits[keep])
catalogs = {"sim-only": cnn.predict(real[held_out]),
            "transfer learning (fit labels)": transfer.predict(real[held_out])}
print(r2_table(real_truth[held_out], catalogs))

fig, axes = plt.subplots(2, 2, figsize=(9, 8), layout="constrained")
plot_predicted_vs_true(real_truth[held_out], catalogs, axes=axes, s=10, alpha=0.6)
