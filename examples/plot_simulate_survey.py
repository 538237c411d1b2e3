"""
Simulating a survey
===================

A CNN learns only what its training images show it, so the simulations must
look like the survey they will be applied to: the same pixel scale,
zeropoint, PSF and noise.  This example draws single-Sérsic galaxies with
`~astromorphnet.simulation.simulate_galaxies` in three image conditions — the
``"CANDELS_F160W"`` and ``"GROUND_R"`` presets of
`~astromorphnet.simulation.SurveyConfig` and a survey of our own with
correlated noise — then adds the imperfections of real cutouts with
`~astromorphnet.simulation.Realism`, and finally writes a set to disk with
`~astromorphnet.simulation.simulate_to_hdf5`.
"""

import os
import tempfile

import galsim
import matplotlib.pyplot as plt
import numpy as np
from astropy.visualization import AsinhStretch, ImageNormalize, PercentileInterval

from astromorphnet.simulation import (CorrelatedNoise, Realism, SurveyConfig, draw_parameters,
                                      open_dataset, simulate_galaxies, simulate_to_hdf5)

scale = float(os.environ.get("ASTROMORPHNET_EXAMPLE_SCALE", 1.0))
n_show = 6                               # galaxies per row of the figure
n_disk = max(32, int(500 * scale))       # galaxies written to the HDF5 set

# %%
# Survey presets
# --------------
# A `~astromorphnet.simulation.SurveyConfig` holds everything a simulation
# needs.  The presets are HST/WFC3 F160W as in CANDELS (0.06"/pixel, an
# obscured-Airy PSF, deep white noise) and a ground-based r band (0.2"/pixel,
# 0.7" Kolmogorov seeing, sky and read noise).  Any attribute can be changed
# when the preset is loaded.
hst = SurveyConfig.from_preset("CANDELS_F160W", stamp_size=48)
ground = SurveyConfig.from_preset("GROUND_R", stamp_size=16)
print(hst)
print(ground)

# %%
# Your own survey
# ---------------
# Give the pixel scale, the AB zeropoint of the image units, a PSF (a GalSim
# profile as here, an image array sampled at the pixel scale, a FITS path, or
# a list of those to vary the PSF from galaxy to galaxy) and a noise model.
# Drizzled space images have *correlated* noise; `CorrelatedNoise("cosmos")
# <astromorphnet.simulation.CorrelatedNoise>` uses the correlation function
# that GalSim ships (no download), measured on blank sky of the HST/ACS
# COSMOS mosaic at 0.03"/pixel, here with its own variance; a blank-sky image
# of your own survey can be given instead.  Our survey is COSMOS-like:
# 0.03"/pixel and a 0.1" Moffat PSF.
custom = SurveyConfig("ACS-like", pixel_scale=0.03, zeropoint=25.94,
                      psf=galsim.Moffat(beta=3.0, fwhm=0.1), noise=CorrelatedNoise("cosmos"),
                      stamp_size=96)

# %%
# The same galaxies under each survey
# -----------------------------------
# Draw one set of parameters and image it in every survey.  Sizes are in
# pixels, so they are converted to keep the same angular size, and the
# stamps are chosen to cover the same 2.9" field: 48 HST/WFC3 pixels,
# 16 ground-based ones, 96 ACS-like ones.
truth = draw_parameters(n_show, {"mag": (18.5, 21.5), "r_eff": (3, 10), "sersic_n": (0.5, 4)},
                        random_state=2)


def rescaled(truth, survey):
    """The same galaxies with sizes in ``survey``'s pixels (``truth`` is in HST's)."""
    out = truth.copy()
    out["r_eff"] *= hst.pixel_scale / survey.pixel_scale
    return out


realism = Realism(knot_fraction=(0.1, 0.3), neighbours=1.0, sky_gradient=2.0, cosmic_rays=1.0)
rows = {
    "CANDELS F160W": simulate_galaxies(truth=truth, survey=hst, random_state=0),
    "ground-based r": simulate_galaxies(truth=rescaled(truth, ground), survey=ground,
                                        random_state=0),
    "ACS-like, COSMOS noise": simulate_galaxies(truth=rescaled(truth, custom), survey=custom,
                                                random_state=0),
    "F160W + Realism": simulate_galaxies(truth=truth, survey=hst, realism=realism,
                                         random_state=0),
}

fig, axes = plt.subplots(len(rows), n_show, figsize=(1.7 * n_show, 1.8 * len(rows)),
                         layout="constrained")
for ax_row, (name, (images, _)) in zip(axes, rows.items()):
    for ax, stamp in zip(ax_row, images):
        norm = ImageNormalize(stamp, interval=PercentileInterval(99.5),
                              stretch=AsinhStretch(0.1))
        ax.imshow(stamp, origin="lower", cmap="gray", norm=norm)
        ax.set_xticks([])
        ax.set_yticks([])
    ax_row[0].set_ylabel(name, fontsize=8)
for ax, row in zip(axes[0], truth):
    r_eff = row["r_eff"].value * hst.pixel_scale
    ax.set_title(f"n = {row['sersic_n']:.1f}, $r_e$ = {r_eff:.2f}\"", fontsize=8)

# %%
# Seen from the ground, the 0.7" seeing blurs away the difference between
# steep (high-n) and shallow profiles that HST resolves.  The last row keeps
# the same single-Sérsic galaxies but adds what real cutouts have and clean
# simulations lack: star-forming knots, neighbouring galaxies, a residual sky
# gradient and cosmic rays.
#
# The truth table
# ---------------
# Every simulation returns the images and a `~astropy.table.QTable` of the
# main galaxy's parameters with units.  ``r_eff`` is the half-light radius
# along the semi-major axis in pixels, ``ellipticity`` is 1 − b/a, ``pa``
# the position angle and ``dx``/``dy`` the sub-pixel offset of the centre.
# With a `~astromorphnet.simulation.Realism`, columns record what was added
# (``mag`` includes the knots' light).  ``meta`` keeps the survey and seed.
images, realistic_truth = rows["F160W + Realism"]
for name in ("mag", "r_eff", "sersic_n", "ellipticity", "pa", "dx", "dy", "knot_fraction"):
    realistic_truth[name].info.format = ".2f"
realistic_truth.pprint_all()
print({key: realistic_truth.meta[key] for key in ("zeropoint", "pixel_scale", "seed")})

# %%
# White and correlated noise differ in how neighbouring pixels co-vary.  A
# galaxy far too faint to see (mag 35) leaves only noise in the stamp; the
# correlation of each pixel with its right-hand neighbour tells the two
# apart.  Resampled to coarser pixels, the COSMOS correlation largely
# averages out (the last line: the same noise on the HST/WFC3 grid).
blank = draw_parameters(20, {"mag": (35, 35)}, random_state=3)
coarse = SurveyConfig("COSMOS noise at 0.06\"", pixel_scale=0.06, zeropoint=25.94,
                      psf=custom.psf, noise=custom.noise, stamp_size=48)
for survey in (hst, custom, coarse):
    noise, _ = simulate_galaxies(truth=blank, survey=survey, random_state=4)
    r = np.corrcoef(noise[:, :, :-1].ravel(), noise[:, :, 1:].ravel())[0, 1]
    print(f"{survey.name:22s} {survey.noise!r:41s} neighbour correlation {r:+.2f}")

# %%
# Large training sets on disk
# ---------------------------
# Training sets of 10⁵ galaxies do not fit in memory comfortably.
# `~astromorphnet.simulation.simulate_to_hdf5` renders straight into a chunked
# HDF5 file (in parallel with ``n_jobs``; an interrupted run resumes with
# identical results), and `~astromorphnet.simulation.open_dataset` reads it
# lazily: pass the dataset to an estimator's ``fit`` and it streams the
# cutouts from disk, labels included.
with tempfile.TemporaryDirectory() as tmp:
    path = simulate_to_hdf5(os.path.join(tmp, "train.h5"), n_disk, hst, realism=realism,
                            ranges={"mag": (17, 24), "r_eff": (1.5, 10)}, random_state=1)
    with open_dataset(path) as dataset:
        print(dataset)
        print(dataset.images.shape, dataset.images.dtype)
        preview = dataset.truth["mag", "r_eff", "sersic_n", "ellipticity"][:3]
        preview.round(2)
        print(preview)
        on_disk = dataset.truth["mag"].value

fig, ax = plt.subplots(figsize=(4, 3), layout="constrained")
ax.hist(on_disk, bins=20, color="0.6")
ax.set_xlabel("mag [AB]")
ax.set_ylabel("galaxies in the HDF5 set")
