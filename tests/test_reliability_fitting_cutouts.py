"""Bad input and degenerate data for fit_sersic, extract_cutouts and mask_neighbours.

Nothing may come back silently wrong: every case either raises a clear error
(naming the parameter and what is accepted), or returns a result whose flags
say what is wrong, while good data around it stay unflagged.
"""

import astropy.units as u
import numpy as np
import pytest
from astropy.nddata import CCDData, NDData, StdDevUncertainty, VarianceUncertainty
from astropy.utils.exceptions import AstropyUserWarning
from photutils.utils import NoDetectionsWarning

from astromorphnet.catalog import SersicFlag
from astromorphnet.cutouts import extract_cutouts, mask_neighbours
from astromorphnet.fitting import MIN_SN, FitFlag, fit_sersic
from astromorphnet.fitting._model import chi2_nu_limit
from astromorphnet.simulation import PSFKernel, render_sersic

galsim = pytest.importorskip("galsim")

SCALE = 0.06
ZEROPOINT = 25.94
SIZE = 24
NOISE = 0.01
FLUX = 20.0  # mag 22.7: S/N ~ 300 in NOISE
#: Bits that say "this is not a measurement"; AT_BOUND and NOT_CONVERGED are not at issue here.
QUALITY = FitFlag.LOW_SN | FitFlag.BAD_CHI2 | FitFlag.EXTRAPOLATED | FitFlag.BAD_DATA


def moffat():
    return galsim.Moffat(3, fwhm=0.18)


@pytest.fixture(scope="module")
def kernel():
    return PSFKernel(moffat(), SCALE)


def galaxy(kernel, r_eff=2.5, n=1.5, q=0.7, pa=30.0, flux=FLUX, size=SIZE, **kwargs):
    return render_sersic((size, size), flux, r_eff, n, q, pa, kernel, **kwargs)


def noise(seed, size=SIZE, sigma=NOISE):
    return np.random.default_rng(seed).normal(0.0, sigma, (size, size))


def fit(images, std=None, **kwargs):
    """fit_sersic of a stack, with a uniform uncertainty ``std`` when given."""
    if std is not None:
        images = [NDData(image, uncertainty=StdDevUncertainty(np.full(image.shape, std)))
                  for image in images]
    return fit_sersic(images, moffat(), pixel_scale=SCALE, zeropoint=ZEROPOINT, **kwargs)


# -- fit_sersic: flags on data that hold no measurable galaxy ---------------------------------
@pytest.mark.parametrize("std", [None, NOISE], ids=["noise-estimated", "noise-map"])
def test_good_galaxies_stay_unflagged(kernel, std):
    """The flags do not fire on what the fitter does well (they cannot pass by flagging all)."""
    shapes = [dict(), dict(n=4.0, r_eff=2.0, q=0.9), dict(n=0.8, r_eff=3.5, q=0.4, pa=120.0),
              dict(flux=2.0)]  # the last at S/N ~ 30
    images = [galaxy(kernel, **shape) + noise(seed) for seed, shape in enumerate(shapes)]
    catalog = fit(images, std)
    assert (catalog["fit_flag"] & QUALITY).tolist() == [0] * len(shapes)
    assert np.all(catalog["sn"] > MIN_SN) and np.all(catalog["chi2_nu"] < 1.3)
    assert catalog["r_eff"][0].value == pytest.approx(2.5, rel=0.1)


@pytest.mark.parametrize("std, fit_sky", [(None, False), (NOISE, False), (None, True)],
                         ids=["noise-estimated", "noise-map", "fit-sky"])
def test_pure_noise_is_no_detection(std, fit_sky):
    # Fitted, such noise came back as mag ~30 galaxies of r_eff 0.1-0.3 pixel, flag 0.
    catalog = fit([noise(seed) for seed in (10, 11, 12)], std, fit_sky=fit_sky)
    assert np.all(catalog["fit_flag"] & FitFlag.LOW_SN)
    assert np.all(catalog["sn"] < MIN_SN)


def test_quantised_counts_get_a_sane_sn(kernel):
    """Poisson counts on a faint sky: most pixels equal, whose MAD of 0 is no noise-free sky.

    The S/N came out ~10^5 times too high (so noise could never be LOW_SN);
    it must be near the matched filter's on the sky's Poisson sigma.
    """
    sky, model = 0.3, galaxy(kernel, flux=200.0)
    counts = np.random.default_rng(4).poisson(model + sky).astype(float) - sky
    expected = np.sqrt(np.sum(model**2) / sky)
    assert fit([counts])["sn"][0] == pytest.approx(expected, rel=0.5)


@pytest.mark.parametrize("image", [np.zeros((SIZE, SIZE)), np.full((SIZE, SIZE), 0.05),
                                   np.full((SIZE, SIZE), -3.0)], ids=["zero", "flat", "negative"])
def test_blank_cutout_is_bad_data(image):
    # An all-zero cutout came back with the starting values, a flat one with r_eff 59 px.
    catalog = fit([image])
    assert catalog["fit_flag"][0] == FitFlag.BAD_DATA
    assert np.isnan(catalog["mag"][0].value) and np.isnan(catalog["sn"][0])


def test_flat_sky_is_extrapolated():
    """A sky level left in (no galaxy) is fitted by a profile larger than the stamp."""
    catalog = fit([0.05 + noise(5)])
    assert catalog["fit_flag"][0] & FitFlag.EXTRAPOLATED
    assert catalog["r_eff"][0].value > SIZE


def test_galaxy_larger_than_its_stamp_is_extrapolated(kernel):
    image = galaxy(kernel, r_eff=40.0, n=4.0, flux=400.0, size=16) + noise(6, size=16)
    catalog = fit([image])
    assert catalog["fit_flag"][0] & FitFlag.EXTRAPOLATED


@pytest.mark.parametrize("std", [None, NOISE], ids=["noise-estimated", "noise-map"])
def test_sign_flipped_galaxy_is_flagged(kernel, std):
    # It came back with chi2_nu ~1000 and flag 0.
    catalog = fit([-galaxy(kernel) + noise(7)], std)
    assert catalog["fit_flag"][0] & FitFlag.LOW_SN
    assert catalog["fit_flag"][0] & FitFlag.BAD_CHI2


def test_unmasked_neighbour_is_bad_chi2(kernel):
    blend = galaxy(kernel) + galaxy(kernel, r_eff=1.0, flux=FLUX, dx=5.0, dy=4.0) + noise(8)
    catalog = fit([blend], NOISE)
    assert catalog["fit_flag"][0] & FitFlag.BAD_CHI2 and catalog["chi2_nu"][0] > 2


def test_too_small_uncertainty_of_a_faint_galaxy_is_bad_chi2(kernel):
    image = galaxy(kernel, flux=2.0) + noise(9)  # S/N ~ 30
    right, too_small = fit([image], NOISE), fit([image], NOISE / 3)
    assert right["fit_flag"][0] & QUALITY == 0
    assert too_small["fit_flag"][0] & FitFlag.BAD_CHI2
    assert too_small["chi2_nu"][0] == pytest.approx(9 * right["chi2_nu"][0], rel=0.05)


def test_small_model_mismatch_of_a_bright_galaxy_is_not_bad_chi2(kernel):
    """Knots on a bright galaxy: significant, but a small part of its light."""
    knots = sum(galaxy(kernel, r_eff=0.3, flux=4.0, dx=dx, dy=dy)
                for dx, dy in [(2.0, 1.0), (-1.5, 2.0), (0.5, -2.5)])
    catalog = fit([galaxy(kernel, flux=10 * FLUX) + knots + noise(10)], NOISE)
    assert catalog["chi2_nu"][0] > chi2_nu_limit(SIZE**2 - 7)  # significant
    assert catalog["fit_flag"][0] & QUALITY == 0
    assert catalog["r_eff"][0].value == pytest.approx(2.5, rel=0.1)


def test_chi2_nu_limit_follows_the_statistics():
    # 5 sigma of chi2 with 1000 degrees of freedom: 1 + ~5 sqrt(2/1000), a little more (skew).
    assert 1.2 < chi2_nu_limit(1000) < 1.3
    assert chi2_nu_limit(100) > chi2_nu_limit(1000) > chi2_nu_limit(10000) > 1.0
    # A noise estimated from the pixels scatters too: the limit widens.
    assert chi2_nu_limit(1000, n_noise=400) > chi2_nu_limit(1000)
    assert chi2_nu_limit(1000, n_noise=10**7) == pytest.approx(chi2_nu_limit(1000), rel=1e-3)


@pytest.mark.parametrize("cutout", [
    NDData(np.full((SIZE, SIZE), np.nan)),
    NDData(np.full((SIZE, SIZE), np.inf)),
    NDData(np.ones((SIZE, SIZE)), mask=np.ones((SIZE, SIZE), bool)),
    NDData(np.ones((SIZE, SIZE)), uncertainty=StdDevUncertainty(np.zeros((SIZE, SIZE)))),
    NDData(np.ones((3, 3))),
], ids=["nan", "inf", "masked", "zero-uncertainty", "3x3"])
def test_unusable_cutout_is_bad_data_and_spares_the_others(kernel, cutout):
    good = NDData(galaxy(kernel) + noise(0))
    catalog = fit_sersic([cutout, good], moffat(), pixel_scale=SCALE, zeropoint=ZEROPOINT)
    assert catalog["fit_flag"][0] == FitFlag.BAD_DATA and np.isnan(catalog["r_eff"][0])
    assert catalog["fit_flag"][1] & QUALITY == 0


@pytest.mark.parametrize("other", [
    NDData(np.ones((SIZE, SIZE)), uncertainty=StdDevUncertainty(np.full((SIZE, SIZE), NOISE))),
    NDData(np.ones((SIZE, SIZE)), uncertainty=StdDevUncertainty(np.full((SIZE, SIZE), np.nan))),
], ids=["with-uncertainty", "nan-uncertainty"])
def test_cutout_without_uncertainty_among_others_with_one(kernel, other):
    """A set's missing uncertainties read as NaN: the cutout is fitted as if alone."""
    image = galaxy(kernel) + noise(0)
    alone = fit([image])
    mixed = fit_sersic([other, NDData(image)], moffat(), pixel_scale=SCALE, zeropoint=ZEROPOINT)
    assert mixed["fit_flag"][1] == alone["fit_flag"][0] == 0  # it was BAD_DATA
    assert mixed["r_eff"][1] == alone["r_eff"][0] and mixed["sn"][1] == alone["sn"][0]


def test_off_centre_psf_image_warns(kernel):
    psf = moffat().drawImage(nx=15, ny=15, scale=SCALE).array
    with pytest.warns(AstropyUserWarning, match=r"pixels from the image centre.*recentre"):
        fit_sersic(galaxy(kernel)[np.newaxis], np.roll(psf, 3, axis=1), zeropoint=ZEROPOINT)


def _x():
    return np.ones((1, 16, 16))


@pytest.mark.parametrize("X, psf, kwargs, error, match", [
    (np.ones(16), moffat(), {}, ValueError, r"got an array of shape \(16,\)"),
    (_x().astype(complex), moffat(), {}, ValueError, "Complex data not supported"),
    (_x() > 0, moffat(), {}, TypeError, "X is boolean"),
    (None, moffat(), {}, TypeError, "X is None"),
    (_x(), np.ones((3, 3), bool), {}, TypeError, "of dtype bool: a PSF image must hold real"),
    (_x(), np.ones((3, 3), complex), {}, TypeError, "of dtype complex128: a PSF image must"),
    (_x(), [[1.0, 2.0], [1.0]], {}, TypeError, "psf must be a galsim.GSObject, a 2-D PSF image"),
    (_x(), np.ones((3, 5, 5)), {}, ValueError, r"finite 2-D array .* got shape \(3, 5, 5\)"),
    (_x(), np.ones(5), {}, ValueError, r"finite 2-D array .* got shape \(5,\)"),
    (_x(), np.zeros((5, 5)), {}, ValueError, "finite 2-D array of positive sum"),
    (_x(), -np.ones((5, 5)), {}, ValueError, "finite 2-D array of positive sum"),
    (_x(), np.full((5, 5), np.nan), {}, ValueError, "finite 2-D array of positive sum"),
    (_x(), np.ones((0, 0)), {}, ValueError, "finite 2-D array of positive sum"),
    (_x(), None, {}, TypeError, "psf must be a galsim.GSObject.*got NoneType"),
    (_x(), moffat(), {"pixel_scale": 0.06 * u.deg}, ValueError,
     r"PSF's FWHM \(0.18 arcsec\) spans 0.000833 pixels.*check pixel_scale"),
    (_x(), moffat(), {"pixel_scale": 0.06 * u.mas}, ValueError,
     r"spans 3e\+03 pixels.*outside 0.1-16 \(the cutout size\)"),
    (_x(), moffat(), {"pixel_scale": 0}, ValueError, "pixel_scale must be positive"),
    (_x(), moffat(), {"pixel_scale": -0.06}, ValueError, "pixel_scale must be positive"),
    (_x(), moffat(), {"zeropoint": "25"}, TypeError, "zeropoint must be .*got '25'"),
    (_x(), moffat(), {"zeropoint": [25.0, 26.0]}, TypeError, "zeropoint must be"),
    (_x(), moffat(), {"zeropoint": np.inf}, ValueError, "zeropoint must be finite"),
    (_x(), moffat(), {"zeropoint": True}, TypeError, "zeropoint must be"),
    (_x(), moffat(), {"n_jobs": 0}, ValueError, "n_jobs=0 runs no worker"),
    (_x(), moffat(), {"fit_sky": "no"}, TypeError, "fit_sky must be True or False; got 'no'"),
    (_x(), moffat(), {"fit_sky": None}, TypeError, "fit_sky must be True or False; got None"),
    (_x(), moffat(), {"initial": "abc"}, TypeError, "initial must be a Table .*got str"),
    (_x(), moffat(), {"initial": {"mag": 20.0}}, TypeError, "initial must be a Table .*got dict"),
    (_x(), moffat(), {"initial": [20.0, 3.0, 1.0, 0.2]}, ValueError,
     r"initial must be an array \(n, 4\).*got shape \(4,\)"),
    (_x(), moffat(), {"bounds": [("r_eff", (1, 2))]}, TypeError,
     r"bounds must be a dict \{name: \(low, high\)\}; got list"),
    (_x(), moffat(), {"bounds": {"r_eff": (np.nan, 2)}}, ValueError,
     "is empty: low must be < high"),
    ([NDData(np.ones((16, 16)), uncertainty=StdDevUncertainty(-np.ones((16, 16))))], moffat(), {},
     ValueError, "negative"),
    ([NDData(np.ones((16, 16)), uncertainty=VarianceUncertainty(-np.ones((16, 16))))], moffat(),
     {}, ValueError, "negative"),
    ([NDData(np.ones((16, 16)), uncertainty=StdDevUncertainty(np.ones((3, 3))))], moffat(), {},
     ValueError, r"uncertainty of shape \(3, 3\) does not match"),
], ids=lambda value: None)
def test_fit_sersic_bad_input(X, psf, kwargs, error, match):
    args = {"pixel_scale": SCALE, "zeropoint": ZEROPOINT, **kwargs}
    with pytest.raises(error, match=match):
        fit_sersic(X, psf, **args)


# -- mask_neighbours: one blank cutout must not abort the batch ----------------------------
def _stamp(seed=0):
    """A central galaxy and a neighbour at (6, 26) on 32x32 noise."""
    yy, xx = np.mgrid[:32, :32]
    image = 40 * np.exp(-((xx - 15.5) ** 2 + (yy - 15.5) ** 2) / 8)
    image += 40 * np.exp(-((xx - 6) ** 2 + (yy - 26) ** 2) / 4)
    return image + np.random.default_rng(seed).normal(0, 1, image.shape)


@pytest.mark.parametrize("blank, blank_mask", [
    (np.zeros((32, 32)), False),
    (np.full((32, 32), 7.0), False),
    (np.full((32, 32), np.nan), False),
    (np.full((32, 32), np.inf), False),
    (_stamp(), True),  # fully masked by its own mask
], ids=["zeros", "constant", "nan", "inf", "masked"])
def test_mask_neighbours_skips_a_blank_cutout_in_a_stack(blank, blank_mask):
    data = np.stack([_stamp(1), blank, _stamp(2)])
    mask = np.zeros(data.shape, bool)
    mask[1] = blank_mask
    with pytest.warns(AstropyUserWarning, match=r"1 cutout\(s\) are blank.*indices \[1\]"):
        masked = mask_neighbours(np.ma.MaskedArray(data, mask=mask))
    # The blank cutout keeps its mask (its NaN/inf masked), the others have their neighbour masked.
    np.testing.assert_array_equal(masked.mask[1], mask[1] | ~np.isfinite(data[1]))
    assert masked.mask[0, 26, 6] and masked.mask[2, 26, 6] and not masked.mask[0, 16, 16]


@pytest.mark.parametrize("blank", [
    NDData(np.zeros((32, 32))),
    NDData(_stamp(), mask=np.ones((32, 32), bool)),
    CCDData(np.full((32, 32), np.nan), unit="adu"),
    np.zeros((32, 32)),
], ids=["zeros", "masked", "nan-ccd", "array"])
def test_mask_neighbours_skips_a_blank_cutout_in_a_list(blank):
    with pytest.warns(AstropyUserWarning, match=r"indices \[0, 2\]"):
        out = mask_neighbours([blank, NDData(_stamp()), blank])
    assert out[1].mask[26, 6] and not out[1].mask[16, 16]
    assert np.asarray(out[0].mask).shape == (32, 32)


@pytest.mark.parametrize("cutouts, expected", [
    (np.empty((0, 32, 32)), (0, 32, 32)),
    ([], 0),
])
def test_mask_neighbours_of_nothing_is_empty(cutouts, expected):
    masked = mask_neighbours(cutouts)
    assert (masked.shape if isinstance(masked, np.ndarray) else len(masked)) == expected


def test_mask_neighbours_of_one_nddata_returns_one():
    out = mask_neighbours(NDData(_stamp()))
    assert isinstance(out, NDData) and out.mask[26, 6] and not out.mask[16, 16]


@pytest.mark.parametrize("cutouts, kwargs, error, match", [
    (np.zeros((32, 32)), {}, ValueError, r"got an array of shape \(32, 32\): for one image pass"),
    (np.zeros((2, 8, 8), complex), {}, ValueError, "cutouts must hold real numbers"),
    ([np.zeros((8, 8)), np.zeros((2, 8, 8))], {}, ValueError,
     r"cutouts\[1\] has shape \(2, 8, 8\)"),
    ([NDData(np.zeros((8, 8), complex))], {}, ValueError, r"cutouts\[0\] must hold real numbers"),
    ([NDData(_stamp(), uncertainty=StdDevUncertainty(-np.ones((32, 32))))], {}, ValueError,
     r"cutouts\[0\].uncertainty has .*negative"),
    ([NDData(_stamp(), uncertainty=StdDevUncertainty(np.ones((3, 3))))], {}, ValueError,
     r"cutouts\[0\].uncertainty of shape \(3, 3\) does not match"),
    ([NDData(_stamp(), mask=np.zeros((3, 3), bool))], {}, ValueError,
     r"cutouts\[0\].mask of shape \(3, 3\)"),
    (np.zeros((1, 8, 8)), {"deblend": "yes"}, TypeError, "deblend must be True or False"),
    (np.zeros((1, 8, 8)), {"n_pixels": "10"}, ValueError, "n_pixels must be a positive int"),
    (np.zeros((1, 8, 8)), {"threshold": np.inf}, ValueError, "threshold must be positive"),
], ids=lambda value: None)
def test_mask_neighbours_bad_input(cutouts, kwargs, error, match):
    with pytest.raises(error, match=match):
        mask_neighbours(cutouts, **kwargs)


# -- extract_cutouts ---------------------------------------------------------------------
def _mosaic(shape=(96, 96)):
    rng = np.random.default_rng(3)
    yy, xx = np.mgrid[:shape[0], :shape[1]]
    image = rng.normal(0.0, 1.0, shape)
    for x0, y0 in [(30.3, 30.2), (60.2, 70.3)]:
        image += 50 * np.exp(-((xx - x0) ** 2 + (yy - y0) ** 2) / 8)
    return image


@pytest.mark.parametrize("spoil", ["mask", "nan", "weight"])
def test_mostly_masked_mosaic_speaks_our_parameters(spoil):
    image, valid = _mosaic(), np.zeros((96, 96), bool)
    valid[16:48, 16:48] = True  # one galaxy's 32x32 neighbourhood
    kwargs = {}
    if spoil == "mask":
        kwargs["mask"] = ~valid
    elif spoil == "nan":
        image[~valid] = np.nan
    else:
        kwargs["weight"] = valid.astype(float)
    with pytest.raises(ValueError, match=r"cannot estimate the background: every 64x64-pixel "
                       r"box \(box_size=64\).*89% of the 96x96 mosaic.*smaller box_size") as err:
        extract_cutouts(image, size=16, **kwargs)
    assert "exclude_percentile" not in str(err.value)
    # What the message advises works.
    result = extract_cutouts(image, size=16, box_size=16, **kwargs)
    assert len(result.cutouts) == 1


@pytest.mark.parametrize("kwargs, error, match", [
    ({"size": True}, ValueError, "size must be a positive int"),
    ({"size": "16"}, ValueError, "size must be a positive int"),
    ({"size": np.inf}, ValueError, "size must be a positive int"),
    ({"n_pixels": "a"}, ValueError, "n_pixels must be a positive int; got 'a'"),
    ({"n_pixels": True}, ValueError, "n_pixels must be a positive int; got True"),
    ({"n_pixels": np.inf}, ValueError, "n_pixels must be a positive int; got inf"),
    ({"threshold": "3"}, ValueError, "threshold must be positive and finite .*got '3'"),
    ({"threshold": np.inf}, ValueError, "threshold must be positive and finite"),
    ({"threshold": np.nan}, ValueError, "threshold must be positive and finite"),
    ({"kernel_fwhm": "3"}, ValueError, "kernel_fwhm must be positive"),
    ({"kernel_fwhm": np.inf}, ValueError, "kernel_fwhm must be positive"),
    ({"n_levels": 2.5}, ValueError, "n_levels must be a positive int"),
    ({"contrast": "0.1"}, ValueError, r"contrast must lie in \[0, 1\]"),
    ({"contrast": np.nan}, ValueError, r"contrast must lie in \[0, 1\]"),
    ({"dilate": True}, ValueError, "dilate must be a non-negative int"),
    ({"deblend": "no"}, TypeError, "deblend must be True or False; got 'no'"),
    ({"subtract_background": "no"}, TypeError, "subtract_background must be True or False"),
    ({"subtract_background": None}, TypeError, "subtract_background must be True or False"),
    ({"error": -np.ones((96, 96))}, ValueError,
     r"error must be a standard deviation >= 0; 9216 pixel\(s\) are negative"),
    ({"mask": np.zeros((95, 96), bool)}, ValueError, r"mask must have the mosaic's shape"),
    ({"weight": np.ones((96, 95))}, ValueError, r"weight must have the mosaic's shape"),
    ({"weight": -np.ones((96, 96))}, ValueError, "no finite, unmasked pixel.*negative weight"),
    ({"error": np.zeros((96, 96))}, ValueError, "no finite, unmasked pixel.*zero error"),
], ids=lambda value: None)
def test_extract_cutouts_bad_settings(kwargs, error, match):
    with pytest.raises(error, match=match):
        extract_cutouts(_mosaic(), **kwargs)


def test_mosaic_uncertainty_of_another_shape():
    mosaic = NDData(_mosaic(), uncertainty=StdDevUncertainty(np.ones((96, 95))))
    with pytest.raises(ValueError, match=r"the mosaic's uncertainty of shape \(96, 95\) does "
                                         "not match"):
        extract_cutouts(mosaic)


def test_boolean_mosaic_is_refused_as_a_mask():
    with pytest.raises(ValueError, match=r"got dtype bool \(a mask\? pass it as mask=...\)"):
        extract_cutouts(_mosaic() > 3)


def test_zero_error_pixels_are_masked_like_zero_weight():
    error = np.ones((96, 96))
    error[28:33, 24:26] = 0.0  # no data, inside the first galaxy's cutout
    cutout = extract_cutouts(_mosaic(), [[30.3, 30.2]], size=16, error=error).cutouts[0]
    holes = np.isinf(cutout.uncertainty.array)
    assert holes.sum() == 5 * 2 and cutout.mask[holes].all()


@pytest.mark.parametrize("image", [np.zeros((96, 96)), np.full((96, 96), 4.0),
                                   np.random.default_rng(0).normal(0, 1, (96, 96))],
                         ids=["zeros", "constant", "noise"])
def test_mosaic_without_sources_warns_and_returns_nothing(image):
    with pytest.warns(NoDetectionsWarning, match="no source detected"):
        result = extract_cutouts(image, size=16, threshold=5)
    assert result.cutouts == [] and len(result.table) == 0


def test_cutout_larger_than_the_mosaic_is_flagged():
    result = extract_cutouts(_mosaic(), [[30.3, 30.2]], size=200)
    cutout = result.cutouts[0]
    assert cutout.shape == (200, 200)
    assert result.table["flag"][0] == SersicFlag.PADDED | SersicFlag.MASKED
    assert cutout.mask[np.isnan(cutout.data)].all()


def test_mosaic_without_wcs_has_no_sky_column():
    result = extract_cutouts(_mosaic(), size=16)
    assert "skycoord" not in result.table.colnames and result.cutouts[0].wcs is None
    assert len(result.cutouts) == 2


def test_nan_pixels_are_masked_not_detected():
    image = _mosaic()
    image[60:80, 5:25] = np.nan  # a hole away from the galaxies
    result = extract_cutouts(image, size=16)
    assert len(result.cutouts) == 2
    hole = extract_cutouts(image, [[14.5, 69.5]], size=16).cutouts[0]
    assert hole.mask[np.isnan(hole.data)].all() and hole.meta["flag"] & SersicFlag.MASKED
