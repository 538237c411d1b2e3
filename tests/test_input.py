"""The input layer: every input form, masks, uncertainties, units, WCS, sizes, errors."""

import astropy.units as u
import h5py
import numpy as np
import pytest
from astropy.nddata import (CCDData, InverseVariance, NDData, StdDevUncertainty,
                            VarianceUncertainty)
from astropy.wcs import WCS
from scipy.sparse import csr_matrix

from astromorphnet._input import as_stamps
from astromorphnet.catalog import SersicFlag, labels_to_array
from astromorphnet.preprocessing import ImageNormalizer

from .conftest import ZEROPOINT, make_regressor


def _wcs(scale_arcsec):
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    wcs.wcs.cdelt = [-scale_arcsec / 3600, scale_arcsec / 3600]
    wcs.wcs.crval = [150.0, 2.0]
    wcs.wcs.crpix = [16.5, 16.5]
    return wcs


def _values(catalog):
    return np.column_stack([catalog[c].value for c in ("mag", "r_eff", "sersic_n",
                                                       "ellipticity")])


TEST = slice(80, 88)


def test_every_input_form_gives_the_same_catalog(fitted, survey):
    images = survey[0][TEST]
    reference = _values(fitted.predict(images))
    forms = {
        "array (n, ny, nx, 1)": images[..., np.newaxis],
        "list of NDData": [NDData(im) for im in images],
        # CCDData needs a unit; dimensionless reads as the plain arrays seen at fit time.
        "tuple of CCDData": tuple(CCDData(im, unit=u.dimensionless_unscaled) for im in images),
        "3-D NDData": NDData(images),
        "list of arrays": list(images),
        "masked array": np.ma.MaskedArray(images, mask=np.zeros(images.shape, bool)),
    }
    for name, X in forms.items():
        np.testing.assert_allclose(_values(fitted.predict(X)), reference, rtol=1e-5,
                                   err_msg=name)


def test_masked_pixels_do_not_leak(fitted, survey, rng):
    image = survey[0][80].copy()
    mask = np.zeros(image.shape, bool)
    mask[:6, :] = True
    first = fitted.predict([NDData(image, mask=mask)])
    image[mask] = rng.normal(0, 100, mask.sum())  # garbage under the mask
    second = fitted.predict([NDData(image, mask=mask)])
    np.testing.assert_array_equal(_values(first), _values(second))
    assert first["flag"][0] == 0  # 19% masked: below the MASKED limit


def test_masked_array_mask_is_honoured(fitted, survey):
    images = survey[0][TEST].copy()
    mask = np.zeros(images.shape, bool)
    mask[:, :6] = True
    reference = _values(fitted.predict([NDData(im, mask=m) for im, m in zip(images, mask)]))
    images[mask] = 1e6  # garbage under the mask
    masked = np.ma.MaskedArray(images, mask)
    forms = {"masked array": masked, "(n, ny, nx, 1) masked array": masked[..., np.newaxis],
             "list of masked arrays": list(masked)}
    for name, X in forms.items():
        batch = as_stamps(X).read(0, len(images), images.shape[1:])
        assert batch.mask[mask].all() and not batch.data[mask].any(), name
        np.testing.assert_allclose(_values(fitted.predict(X)), reference, rtol=1e-5,
                                   err_msg=name)


@pytest.mark.parametrize("mask, masked", [(False, False), (True, True)])
def test_scalar_nddata_mask(mask, masked):
    for X in (NDData(np.ones((2, 8, 8)), mask=mask), [NDData(np.ones((8, 8)), mask=mask)]):
        stamps = as_stamps(X)
        batch = stamps.read(0, len(stamps), (8, 8))
        assert batch.mask.all() if masked else not batch.mask.any()
        assert all(flag & SersicFlag.MASKED for flag in batch.flag) == masked


def test_mask_of_another_shape_is_an_error():
    with pytest.raises(ValueError, match="does not match the data's shape \\(2, 8, 8\\)"):
        as_stamps(NDData(np.ones((2, 8, 8)), mask=np.zeros((3, 8), bool)))


def test_nan_and_inf_pixels_are_masked(fitted, survey):
    image = survey[0][80].copy()
    bad = np.zeros(image.shape, bool)
    bad[0, :5] = bad[-1, -3:] = True
    masked = fitted.predict([NDData(image, mask=bad)])
    image[0, :5], image[-1, -3:] = np.nan, np.inf
    catalog = fitted.predict(image[np.newaxis])
    assert np.isfinite(_values(catalog)).all()
    np.testing.assert_array_equal(_values(catalog), _values(masked))


def test_high_masked_fraction_is_flagged(fitted, survey):
    image = survey[0][80]
    mask = np.zeros(image.shape, bool)
    mask[:16] = True
    catalog = fitted.predict([NDData(image, mask=mask)])
    assert catalog["flag"][0] & SersicFlag.MASKED


@pytest.mark.parametrize("uncertainty_class", [StdDevUncertainty, VarianceUncertainty,
                                               InverseVariance])
def test_any_uncertainty_class_and_zero_weight_masks(fitted, survey, uncertainty_class):
    image = survey[0][80].copy()
    weight = np.ones(image.shape)
    weight[5:8, 5:8] = 0.0  # no information in these pixels
    if uncertainty_class is InverseVariance:
        uncertainty = InverseVariance(weight)
    else:
        with np.errstate(divide="ignore"):
            uncertainty = uncertainty_class(1.0 / weight)
    first = fitted.predict([NDData(image, uncertainty=uncertainty)])
    image[5:8, 5:8] = 1e6
    second = fitted.predict([NDData(image, uncertainty=uncertainty)])
    np.testing.assert_array_equal(_values(first), _values(second))


def test_uncertainty_sets_the_noise_scale():
    images = np.zeros((4, 16, 16))
    nd = NDData(images, uncertainty=StdDevUncertainty(np.full(images.shape, 3.0)))
    assert as_stamps(nd).noise(0, 4, (16, 16)).tolist() == [3.0] * 4


def test_wcs_gives_arcsec_radius(fitted, survey):
    catalog = fitted.predict([NDData(im, wcs=_wcs(0.06)) for im in survey[0][TEST]])
    assert catalog["r_eff_arcsec"].unit == u.arcsec
    np.testing.assert_allclose(catalog["r_eff_arcsec"].value, catalog["r_eff"].value * 0.06)


def test_wcs_of_a_stack_gives_the_pixel_scale():
    cube = WCS(naxis=3)  # two celestial axes and the stack's
    cube.wcs.ctype = ["RA---TAN", "DEC--TAN", ""]
    cube.wcs.cdelt = [-0.1 / 3600, 0.1 / 3600, 1.0]
    for wcs, scale in ((_wcs(0.06), 0.06), (cube, 0.1)):
        stamps = as_stamps(NDData(np.ones((2, 8, 8)), wcs=wcs), pixel_scale=0.5)
        np.testing.assert_allclose(stamps.pixel_scale, [scale, scale])
    # A per-cutout meta value is more specific than the WCS.
    stamps = as_stamps(NDData(np.ones((2, 8, 8)), wcs=_wcs(0.06),
                              meta={"pixel_scale": [0.2, np.nan]}))
    np.testing.assert_allclose(stamps.pixel_scale, [0.2, 0.06])


def test_pixel_scale_parameter_and_no_scale(fitted, survey):
    assert "r_eff_arcsec" not in fitted.predict(survey[0][TEST]).colnames
    with_scale = make_regressor(pixel_scale=0.1 * u.arcsec / u.pix, max_epochs=1)
    images, truth = survey
    catalog = with_scale.fit(images[:32], truth[:32]).predict(images[TEST])
    np.testing.assert_allclose(catalog["r_eff_arcsec"].value, catalog["r_eff"].value * 0.1)


def test_crop_and_pad_to_the_network_input(fitted, survey):
    images = survey[0][TEST]
    big = np.pad(images, ((0, 0), (4, 4), (4, 4)))
    cropped = fitted.predict(big)
    np.testing.assert_allclose(_values(cropped), _values(fitted.predict(images)), rtol=1e-5)
    assert (cropped["flag"] == SersicFlag.CROPPED).all()
    small = [NDData(im[2:-2, 3:-3]) for im in images]
    catalog = fitted.predict(small)
    assert all(f & SersicFlag.PADDED for f in catalog["flag"])
    assert np.isfinite(_values(catalog)).all()
    assert not any(fitted.predict(images)["flag"] & SersicFlag.PADDED)


def test_mixed_shapes_in_one_list(fitted, survey):
    images = survey[0][TEST]
    mixed = [NDData(images[0]), NDData(np.pad(images[1], 3)), NDData(images[2][1:-1, 1:-1])]
    catalog = fitted.predict(mixed)
    assert catalog["flag"].tolist()[:2] == [0, SersicFlag.CROPPED]
    assert catalog["flag"][2] & SersicFlag.PADDED


def test_units_must_agree(survey):
    images, truth = survey
    reg = make_regressor(max_epochs=1, zeropoint=None)
    reg.fit(images[:32] * u.nJy, truth[:32])  # zeropoint from the flux density unit
    in_njy = _values(reg.predict(images[TEST] * u.nJy))
    in_ujy = _values(reg.predict([NDData(im / 1000, unit=u.uJy) for im in images[TEST]]))
    np.testing.assert_allclose(in_ujy, in_njy, rtol=1e-4)
    with pytest.raises(u.UnitsError, match="cannot be converted to .*nJy"):
        reg.predict(images[TEST] * u.s)
    with pytest.raises(u.UnitsError, match="have no unit but the estimator was fitted"):
        reg.predict(images[TEST])


def test_meta_zeropoint_is_read(survey):
    images, truth = survey
    cutouts = [NDData(im, meta={"MAGZERO": ZEROPOINT}) for im in images[:32]]
    reg = make_regressor(max_epochs=1, zeropoint=None).fit(cutouts, truth[:32])
    brighter = [NDData(im, meta={"PHOTZP": ZEROPOINT + 1.0}) for im in images[TEST]]
    np.testing.assert_allclose(
        reg.predict(brighter)["mag"].value,
        reg.predict([NDData(im, meta={"MAGZERO": ZEROPOINT}) for im in images[TEST]])
        ["mag"].value + 1.0)


def test_mag_without_zeropoint_is_an_error(survey):
    images, truth = survey
    with pytest.raises(ValueError, match="needs the cutouts' AB zeropoint"):
        make_regressor(zeropoint=None).fit(images[:16], truth[:16])


def test_mixed_units_in_a_list():
    cutouts = [NDData(np.ones((8, 8)), unit=u.nJy), NDData(np.ones((8, 8)))]
    with pytest.raises(u.UnitsError, match="some cutouts have a unit"):
        as_stamps(cutouts)
    stamps = as_stamps([NDData(np.ones((8, 8)), unit=u.nJy),
                        NDData(np.ones((8, 8)), unit=u.uJy)])
    assert stamps.read(0, 2, (8, 8)).data[1, 0, 0] == pytest.approx(1000.0)


@pytest.mark.parametrize("X, match", [
    ([], "X is empty"),
    (np.empty((0, 8, 8)), "X is empty"),
    (np.ones(5), "got an array of shape \\(5,\\). Reshape your data"),
    (np.ones((2, 3, 4, 5)), "got an array of shape \\(2, 3, 4, 5\\)"),
    ([NDData(np.ones(4))], "each cutout in a list must be 2-D"),
    (np.ones((3, 0, 4)), "0 feature"),
    (np.ones((2, 4, 4)) + 1j, "Complex data not supported"),
])
def test_input_errors(X, match):
    with pytest.raises(ValueError, match=match):
        as_stamps(X)


@pytest.mark.parametrize("make, error, match", [
    (lambda: as_stamps(np.ones((2, 4, 4)), pixel_scale=0), ValueError,
     "pixel_scale must be positive, got 0"),
    (lambda: as_stamps(csr_matrix(np.ones((2, 4)))), TypeError,
     "sparse input is not supported: pass X as a dense array"),
    (lambda: as_stamps(NDData(np.ones((3, 4, 4)), meta={"flag": [0, 0]})), ValueError,
     "meta\\['flag'\\] of a 3-D NDData must have one value per cutout \\(3\\)"),
    (lambda: labels_to_array(np.empty((0, 4))), ValueError, "y is empty"),
    (lambda: ImageNormalizer(softening=0).fit(np.ones((2, 4, 4))), ValueError,
     "softening must be positive; got 0"),
], ids=["pixel_scale", "sparse", "meta", "empty y", "softening"])
def test_more_input_errors(make, error, match):
    with pytest.raises(error, match=match):
        make()


def test_on_disk_set_of_the_wrong_shape(tmp_path):
    with h5py.File(tmp_path / "cutouts.h5", "w") as f:
        with pytest.raises(ValueError, match="an on-disk cutout set must be numeric of shape "
                                             "\\(n, ny, nx\\); got shape \\(4, 8\\)"):
            as_stamps(f.create_dataset("X", data=np.ones((4, 8))))


def test_non_numeric_input():
    with pytest.raises(TypeError, match="must hold numbers"):
        as_stamps(np.array([[["a"]]], dtype=object))


def test_single_square_image_warns():
    with pytest.warns(UserWarning, match="image\\[np.newaxis\\]"):
        as_stamps(np.ones((32, 32)))


def test_length_mismatch_and_bad_labels(survey):
    images, truth = survey
    reg = make_regressor()
    with pytest.raises(ValueError, match="X has 10 cutouts but y has 9 label rows"):
        reg.fit(images[:10], truth[:9])
    with pytest.raises(ValueError, match="y must have shape \\(n, 4\\)"):
        reg.fit(images[:10], np.ones((10, 3)))
    labels = np.column_stack([truth[c].value for c in ("mag", "r_eff", "sersic_n",
                                                       "ellipticity")])[:10]
    labels[3, 1] = np.nan
    with pytest.raises(ValueError, match="NaN in 1 row\\(s\\) \\(first: \\[3\\]\\)"):
        reg.fit(images[:10], labels)
    with pytest.raises(ValueError, match="lacks column\\(s\\) \\['sersic_n'\\]"):
        reg.fit(images[:10], truth[:10]["mag", "r_eff", "ellipticity"])
    with pytest.raises(ValueError, match="requires y to be passed"):
        reg.fit(images[:10], None)
    with pytest.raises(ValueError, match="sample_weight must have shape \\(10,\\)"):
        reg.fit(images[:10], truth[:10], sample_weight=np.ones(3))
