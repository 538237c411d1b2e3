"""
Cutouts from a survey mosaic
============================

Real galaxies come in mosaics, not in neat stamps.  Before a network (or a
classical fit) can measure them, each galaxy needs its own cutout, with the
sky subtracted and its neighbours masked.
`~astromorphnet.cutouts.extract_cutouts` does this with photutils: it models
the background, detects and deblends the sources, and returns one
`~astropy.nddata.CCDData` per galaxy with WCS, uncertainty and a mask.

To stay self-contained, this example builds a small synthetic mosaic from
simulated galaxies; with a real one, pass the FITS path (and its weight map)
instead.
"""

import os

import astropy.units as u
import matplotlib.pyplot as plt
import numpy as np
from astropy.nddata import CCDData, StdDevUncertainty
from astropy.visualization import AsinhStretch, ImageNormalize, PercentileInterval
from astropy.wcs import WCS

from astromorphnet.catalog import SersicFlag
from astromorphnet.cutouts import extract_cutouts, select_magnitude
from astromorphnet.simulation import SurveyConfig, simulate_galaxies

scale = float(os.environ.get("ASTROMORPHNET_EXAMPLE_SCALE", 1.0))
shape = (512, 512)
n_galaxies = max(15, int(50 * scale))
zeropoint, pixel_scale, sigma = 25.94, 0.06, 0.008   # HST/CANDELS F160W-like

# %%
# A synthetic mosaic
# ------------------
# Noiseless galaxies (the F160W preset with ``noise=None``) are added at
# random places into a 512×512 image, on a sloped sky, with white noise.  A
# simple gnomonic (TAN) WCS gives it sky coordinates, and the zeropoint goes
# in the ``MAGZERO`` keyword, where the estimators look for it.
rng = np.random.default_rng(0)
survey = SurveyConfig.from_preset("CANDELS_F160W", stamp_size=96, noise=None)
stamps, truth = simulate_galaxies(n_galaxies, survey, random_state=0,
                                  ranges={"mag": (19, 24.5), "r_eff": (2, 10)})

yy, xx = np.mgrid[:shape[0], :shape[1]]
image = 0.02 + 1e-5 * xx + rng.normal(0.0, sigma, shape)
x0 = rng.integers(0, shape[1], n_galaxies)
y0 = rng.integers(0, shape[0], n_galaxies)
half = stamps.shape[1] // 2
padded = np.pad(image, half)               # add whole stamps, then cut the edges off
for stamp, x, y in zip(stamps, x0, y0):
    padded[y:y + 2 * half, x:x + 2 * half] += stamp
image = padded[half:-half, half:-half]
# The galaxy centre in a stamp of even size lies at (size - 1) / 2 + (dx, dy).
truth["x"] = x0 - 0.5 + truth["dx"].value
truth["y"] = y0 - 0.5 + truth["dy"].value

wcs = WCS(naxis=2)
wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
wcs.wcs.crval = [53.1, -27.8]
wcs.wcs.crpix = [shape[1] / 2 + 0.5, shape[0] / 2 + 0.5]
wcs.wcs.cdelt = [-pixel_scale / 3600, pixel_scale / 3600]
wcs.wcs.cunit = ["deg", "deg"]
mosaic = CCDData(image, unit=u.electron / u.s, wcs=wcs, meta={"MAGZERO": zeropoint},
                 uncertainty=StdDevUncertainty(np.full(shape, sigma)))

# %%
# Detect, deblend, cut out
# ------------------------
# Sources are detected 1.5σ above the background on the image smoothed by a
# kernel about the PSF's size, overlapping ones are deblended, and each
# cutout is centred on its source's centroid.  Neighbours' segments, grown by
# ``dilate`` pixels to cover their faint wings, are masked; sources at the
# mosaic's edge are padded with masked pixels and flagged, never dropped.
result = extract_cutouts(mosaic, size=48, box_size=64, threshold=1.5, kernel_fwhm=3.0)
table = result.table
print(f"{len(result.cutouts)} sources detected ({n_galaxies} galaxies placed)")
for name in ("x", "y", "segment_flux"):
    table[name].info.format = ".2f"
print(table[:5])

# %%
# Which placed galaxies were found?  Faint, extended ones sink into the
# noise, and close pairs that deblending cannot split come out as one.
true_x, true_y = np.asarray(truth["x"]), np.asarray(truth["y"])
distance = np.hypot(table["x"].value[:, None] - true_x, table["y"].value[:, None] - true_y)
found = distance.min(axis=0) < 2.0
for low, high in ((19, 21), (21, 23), (23, 24.5)):
    in_bin = (truth["mag"].value >= low) & (truth["mag"].value < high)
    print(f"mag {low}-{high}: {found[in_bin].sum()} of {in_bin.sum()} recovered")

# %%
# The mosaic, the segmentation image (one colour per source) and the
# detected centroids.
fig, (left, right) = plt.subplots(1, 2, figsize=(10, 5), subplot_kw={"projection": wcs},
                                 layout="constrained")
norm = ImageNormalize(image, interval=PercentileInterval(99.7), stretch=AsinhStretch(0.05))
left.imshow(image, origin="lower", cmap="gray", norm=norm)
left.scatter(table["x"].value, table["y"].value, s=60, facecolors="none", edgecolors="tab:red")
left.set_title("mosaic and detections")
right.imshow(result.segmentation.data, origin="lower", cmap=result.segmentation.cmap,
             interpolation="nearest")
right.set_title("deblended segmentation")
for ax in (left, right):
    ax.set_xlabel("RA")
    ax.set_ylabel("Dec")

# %%
# Cutouts and their masks
# -----------------------
# Each cutout is background-subtracted and carries the mosaic's unit, the
# cutout's WCS, the uncertainty and a mask (shaded red): the neighbours'
# pixels and, for an edge source, the pixels beyond the mosaic.  The
# estimators and `~astromorphnet.fitting.fit_sersic` ignore masked pixels.
order = np.argsort([-(c.mask.mean()) for c in result.cutouts])[:6]  # most masked first
fig, axes = plt.subplots(1, len(order), figsize=(2.2 * len(order), 2.6),
                         layout="constrained")
for ax, i in zip(np.atleast_1d(axes), order):
    cutout = result.cutouts[i]
    data = np.nan_to_num(cutout.data)
    norm = ImageNormalize(data[~cutout.mask], interval=PercentileInterval(99.5),
                          stretch=AsinhStretch(0.1))
    ax.imshow(data, origin="lower", cmap="gray", norm=norm)
    shade = np.zeros(cutout.shape + (4,))
    shade[cutout.mask] = (1.0, 0.0, 0.0, 0.35)
    ax.imshow(shade, origin="lower")
    flags = [flag.name for flag in SersicFlag if flag & cutout.meta["flag"]]
    ax.set_title(f"id {cutout.meta['id']}: {'+'.join(flags) or 'unflagged'}", fontsize=8)
    ax.set_xticks([])
    ax.set_yticks([])

# %%
# Selecting galaxies by magnitude
# -------------------------------
# The reference thesis keeps real galaxies no fainter than m = 23 for
# transfer learning: fainter ones are too noisy to label reliably with a
# classical fit.  `~astromorphnet.cutouts.select_magnitude` returns the rows
# to keep from any catalog with an AB magnitude column.  Here the magnitude
# is the isophotal one, from the flux inside each source's segment; it misses
# the light outside the segment, so it is fainter than the total magnitude a
# Sérsic fit or the network would give.
with np.errstate(invalid="ignore", divide="ignore"):
    table["mag"] = (zeropoint - 2.5 * np.log10(table["segment_flux"].value)) * u.ABmag
keep = select_magnitude(table, 23.0) & (table["flag"] == 0)
selected = [cutout for cutout, k in zip(result.cutouts, keep) if k]
print(f"{keep.sum()} of {len(table)} sources are unflagged and no fainter than 23 mag")
print(table[keep]["id", "skycoord", "mag", "area"][:5])

# %%
# With a catalog of known positions (a ``SkyCoord`` or a table with
# ``ra``/``dec``), cutouts are centred there instead, and the segmentation
# only serves to mask the neighbours.  Here we use the placed galaxies' true
# positions, converted to the sky with the WCS.
inside = (true_x > 0) & (true_x < shape[1] - 1) & (true_y > 0) & (true_y < shape[0] - 1)
sky = wcs.pixel_to_world(true_x[inside], true_y[inside])
at_positions = extract_cutouts(mosaic, sky, size=48, box_size=64)
print(f"{len(at_positions.cutouts)} cutouts at catalog positions; "
      f"{np.count_nonzero(at_positions.table['label'] == 0)} of them on no detected segment")
