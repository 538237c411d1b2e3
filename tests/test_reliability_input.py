"""Bad input and silent cases of the input layer (issue 11: items 3, 4, 11, 13).

Each case is a distinct input a demanding user might give: it must either be
read correctly (asserted on values) or fail with a message saying what to pass.
"""

from pathlib import Path

import astropy.units as u
import h5py
import numpy as np
import pytest
from astropy.io import fits
from astropy.nddata import (CCDData, InverseVariance, NDData, StdDevUncertainty,
                            VarianceUncertainty)
from astropy.units import photometric
from astropy.utils.exceptions import AstropyUserWarning
from astropy.wcs import WCS

from astromorphnet._input import as_stamps
from astromorphnet.catalog import SersicFlag

from .conftest import ZEROPOINT, make_regressor

E_S = u.electron / u.s
E_MIN = u.electron / u.min
E_HALF_S = u.Unit(0.5 * u.s) ** -1 * u.electron  # electron / (0.5 s)
SHAPE = (16, 16)


def _galaxy(total=1000.0, shape=SHAPE):
    """A round Gaussian galaxy whose pixels sum to ``total`` (in electron/s)."""
    y, x = np.indices(shape) - (np.array(shape)[:, None, None] - 1) / 2
    image = np.exp(-(x ** 2 + y ** 2) / (2 * 2.0 ** 2))
    return image * total / image.sum()


def _in(unit, total=1000.0):
    """The same galaxy, its pixel values expressed in ``unit``."""
    return (_galaxy(total) * E_S).to_value(unit)


def _magnitude(stamps, unit=None):
    """What an estimator encodes: -2.5 log10(pixel sum) + zeropoint, in ``unit``."""
    if unit is not None:
        stamps.convert_to(unit)
    batch = stamps.read(0, len(stamps), SHAPE)
    return -2.5 * np.log10(batch.data.astype(float).sum(axis=(1, 2))) + stamps.zeropoint


def _celestial_wcs(scale_arcsec):
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    wcs.wcs.cdelt = [-scale_arcsec / 3600, scale_arcsec / 3600]
    return wcs


TRUE_MAG = -2.5 * np.log10(1000.0) + ZEROPOINT  # the zeropoint is for electron/s


# -- item 4: the magnitude does not depend on the unit the cutouts are in -----
@pytest.mark.parametrize("unit", [E_S, E_MIN, E_HALF_S, u.electron / u.hour,
                                  u.Unit("100 electron / s")], ids=str)
@pytest.mark.parametrize("form", ["list of NDData", "Quantity", "3-D NDData", "CCDData"])
def test_keyword_zeropoint_refers_to_the_fit_unit(unit, form):
    pixels = _in(unit)
    X = {"list of NDData": lambda: [NDData(pixels, unit=unit)],
         "Quantity": lambda: pixels[np.newaxis] * unit,
         "3-D NDData": lambda: NDData(pixels[np.newaxis], unit=unit),
         "CCDData": lambda: CCDData(pixels, unit=unit)}[form]()
    stamps = as_stamps(X, zeropoint=ZEROPOINT)
    np.testing.assert_allclose(_magnitude(stamps, E_S), TRUE_MAG, rtol=0, atol=1e-6)


@pytest.mark.parametrize("fit_unit", [E_MIN, E_HALF_S], ids=str)
def test_zeropoint_of_another_fit_unit(fit_unit):
    """A model fitted on electron/min with an electron/min zeropoint, fed electron/s."""
    zeropoint = ZEROPOINT + 2.5 * np.log10((1 * E_S).to_value(fit_unit))
    stamps = as_stamps([NDData(_in(E_S), unit=E_S)], zeropoint=zeropoint)
    np.testing.assert_allclose(_magnitude(stamps, fit_unit), TRUE_MAG, rtol=0, atol=1e-6)


@pytest.mark.parametrize("units", [(E_S, E_MIN), (E_MIN, E_S), (E_HALF_S, E_MIN, E_S)],
                         ids=["s,min", "min,s", "0.5s,min,s"])
def test_mixed_units_in_any_order(units):
    X = [NDData(_in(unit), unit=unit) for unit in units]
    magnitudes = _magnitude(as_stamps(X, zeropoint=ZEROPOINT), E_S)
    np.testing.assert_allclose(magnitudes, TRUE_MAG, rtol=0, atol=1e-6)


def test_mixed_unit_quantities_of_one_shape():
    X = [_in(E_MIN) * E_MIN, _in(E_S) * E_S]
    magnitudes = _magnitude(as_stamps(X, zeropoint=ZEROPOINT), E_S)
    np.testing.assert_allclose(magnitudes, TRUE_MAG, rtol=0, atol=1e-6)


def test_keyword_zeropoint_for_mixed_units_is_ambiguous_until_converted():
    stamps = as_stamps([NDData(_in(E_S), unit=E_S), NDData(_in(E_MIN), unit=E_MIN)],
                       zeropoint=ZEROPOINT)
    with pytest.raises(ValueError, match="zeropoint=25.94 is ambiguous: .*electron / min, "
                                         "electron / s"):
        _magnitude(stamps)
    # A subset given in one unit is not: the zeropoint refers to that unit (electron/min).
    np.testing.assert_allclose(_magnitude(stamps.take([1])), TRUE_MAG - 2.5 * np.log10(60))
    np.testing.assert_allclose(_magnitude(stamps.take([0, 1]), E_S), TRUE_MAG)


def test_meta_zeropoints_refer_to_each_cutouts_own_unit():
    own = {E_S: ZEROPOINT, E_MIN: ZEROPOINT + 2.5 * np.log10(60)}
    X = [NDData(_in(unit), unit=unit, meta={"MAGZERO": zp}) for unit, zp in own.items()]
    for order in (X, X[::-1]):
        stamps = as_stamps(order)  # no keyword: nothing ambiguous
        np.testing.assert_allclose(_magnitude(stamps), TRUE_MAG, rtol=0, atol=1e-6)


@pytest.mark.parametrize("unit", [u.nJy, u.uJy, u.Jy, u.erg / u.s / u.cm ** 2 / u.Hz,
                                  u.nanomaggy], ids=str)
def test_flux_density_units_give_the_exact_zeropoint(unit):
    total = 1000.0 * u.nJy
    pixels = (_galaxy(1.0) * total).to_value(unit, u.zero_point_flux(photometric.AB))
    stamps = as_stamps([NDData(pixels, unit=unit)], zeropoint=ZEROPOINT)  # keyword unused
    np.testing.assert_allclose(_magnitude(stamps, u.nJy), total.to_value(u.ABmag), atol=1e-6)


def test_surface_brightness_with_a_pixel_scale():
    scale = 0.03  # arcsec: 1 pixel = 0.0009 arcsec^2
    total = 1000.0 * u.nJy
    pixels = (_galaxy(1.0) * total / (scale * u.arcsec) ** 2).to_value(u.MJy / u.sr)
    for X in ([NDData(pixels, unit=u.MJy / u.sr, wcs=_celestial_wcs(scale))],
              [NDData(pixels, unit=u.MJy / u.sr)]):
        stamps = as_stamps(X, pixel_scale=scale)
        np.testing.assert_allclose(_magnitude(stamps), total.to_value(u.ABmag), atol=1e-6)


def test_meta_zeropoint_contradicting_a_flux_unit_warns():
    with pytest.warns(AstropyUserWarning, match="meta zeropoint 23.9 differs from 31.4000, "
                                                "the AB zeropoint of its pixel unit nJy"):
        stamps = as_stamps([NDData(np.ones(SHAPE), unit=u.nJy, meta={"PHOTZP": 23.9})])
    assert stamps.zeropoint[0] == pytest.approx(31.4)


def test_pixels_and_zeropoints_after_conversion():
    stamps = as_stamps([NDData(np.full(SHAPE, 60.0), unit=E_MIN, meta={"zeropoint": 30.0})])
    stamps.convert_to(E_S)
    assert stamps.read(0, 1, SHAPE).data[0, 0, 0] == pytest.approx(1.0)
    assert stamps.zeropoint[0] == pytest.approx(30.0 - 2.5 * np.log10(60))


def test_end_to_end_prediction_in_other_units(survey):
    images, truth = survey
    reg = make_regressor(max_epochs=1).fit(images[:32] * E_S, truth[:32])
    test = images[80:84]
    reference = reg.predict(test * E_S)["mag"].value
    forms = {"electron/min": test * 60 * E_MIN,
             "electron/(0.5 s)": test * 0.5 * E_HALF_S,
             "list min,s": [NDData(test[0] * 60, unit=E_MIN)] + [NDData(im, unit=E_S)
                                                                 for im in test[1:]],
             "list s,min": [NDData(im, unit=E_S) for im in test[:3]]
             + [NDData(test[3] * 60, unit=E_MIN)]}
    for name, X in forms.items():
        catalog = reg.predict(X)
        np.testing.assert_allclose(catalog["mag"].value, reference, rtol=0, atol=1e-5,
                                   err_msg=name)
        assert not catalog["flag"].any(), name


# -- item 4: uncertainties in another unit than their data --------------------
@pytest.mark.parametrize("make, std", [
    (lambda shape: StdDevUncertainty(np.full(shape, 60.0), unit=E_MIN), 1.0),
    (lambda shape: VarianceUncertainty(np.full(shape, 3600.0), unit=E_MIN ** 2), 1.0),
    (lambda shape: InverseVariance(np.full(shape, 1 / 3600.0), unit=E_MIN ** -2), 1.0),
    (lambda shape: StdDevUncertainty(np.full(shape, 2.0)), 2.0),  # no unit: the data's
    (lambda shape: StdDevUncertainty(2.0), 2.0),  # one value for all pixels
], ids=["std in e/min", "variance in (e/min)^2", "ivar in (e/min)^-2", "no unit", "scalar"])
@pytest.mark.parametrize("form", ["list", "stack"])
def test_uncertainty_is_converted_to_the_data_unit(make, std, form):
    if form == "list":
        X = [NDData(np.ones(SHAPE), unit=E_S, uncertainty=make(SHAPE))]
    else:
        X = NDData(np.ones((1,) + SHAPE), unit=E_S, uncertainty=make((1,) + SHAPE))
    stamps = as_stamps(X)
    np.testing.assert_allclose(stamps.read(0, 1, SHAPE).std, std)
    np.testing.assert_allclose(stamps.noise(0, 1, SHAPE), std)


def test_uncertainty_in_percent_of_dimensionless_data():
    X = [NDData(np.ones(SHAPE), unit=u.dimensionless_unscaled,
                uncertainty=StdDevUncertainty(np.full(SHAPE, 5.0), unit=u.percent))]
    np.testing.assert_allclose(as_stamps(X).read(0, 1, SHAPE).std, 0.05)


# -- item 3: a 3-D CCDData or NDData keeps everything; a 2-D one is one cutout --
def _ccd_stack():
    mask = np.zeros((2,) + SHAPE, bool)
    mask[1, :8] = True
    return CCDData(np.ones((2,) + SHAPE), unit=E_MIN, mask=mask,
                   uncertainty=StdDevUncertainty(np.full((2,) + SHAPE, 60.0)),
                   meta={"zeropoint": [30.0, 31.0], "pixel_scale": [0.1, 0.2],
                         "flag": [0, int(SersicFlag.PADDED)]})


@pytest.mark.parametrize("check", ["mask", "unit", "zeropoint", "uncertainty", "pixel_scale",
                                   "flag"])
def test_3d_ccddata_keeps(check):
    stamps = as_stamps(_ccd_stack()).convert_to(E_S)
    batch = stamps.read(0, 2, SHAPE)
    if check == "mask":
        assert not batch.mask[0].any() and batch.mask[1, :8].all()
    elif check == "unit":
        assert stamps.unit == E_S and batch.data[0, 0, 0] == pytest.approx(1 / 60)
    elif check == "zeropoint":
        np.testing.assert_allclose(stamps.zeropoint, np.array([30.0, 31.0]) - 2.5 * np.log10(60))
    elif check == "uncertainty":
        np.testing.assert_allclose(batch.std, 1.0)
    elif check == "pixel_scale":
        np.testing.assert_allclose(stamps.pixel_scale, [0.1, 0.2])
    else:
        assert batch.flag.tolist() == [0, SersicFlag.PADDED | SersicFlag.MASKED]


def test_3d_stack_with_a_fits_header_zeropoint():
    header = fits.Header({"MAGZERO": 27.5, "EXPTIME": 100.0})
    stamps = as_stamps(CCDData(np.ones((3,) + SHAPE), unit=E_S, meta=header), zeropoint=20.0)
    np.testing.assert_allclose(stamps.zeropoint, 27.5)


@pytest.mark.parametrize("make", [lambda im: CCDData(im, unit=E_S),
                                  lambda im: NDData(im, unit=E_S)], ids=["CCDData", "NDData"])
def test_2d_nddata_is_one_cutout(make):
    image = _in(E_S)
    stamps = as_stamps(make(image), zeropoint=ZEROPOINT)
    assert len(stamps) == 1 and stamps.unit == E_S and stamps.shapes == [SHAPE]
    np.testing.assert_allclose(_magnitude(stamps), TRUE_MAG, atol=1e-6)


def test_3d_nddata_of_an_on_disk_dataset_stays_on_disk(tmp_path):
    with h5py.File(tmp_path / "stack.h5", "w") as f:
        stamps = as_stamps(NDData(f.create_dataset("X", data=np.ones((3,) + SHAPE)), unit=E_S))
        assert stamps.on_disk and stamps.unit == E_S
        np.testing.assert_allclose(stamps.read(0, 3, SHAPE).data, 1.0)


# -- item 13: cropping is flagged like padding ---------------------------------
@pytest.mark.parametrize("native, flag", [
    ((16, 16), 0),
    ((20, 16), SersicFlag.CROPPED),
    ((16, 21), SersicFlag.CROPPED),
    ((12, 12), SersicFlag.PADDED),
    ((20, 12), SersicFlag.CROPPED | SersicFlag.PADDED),
])
def test_crop_flag(native, flag):
    for X in (np.ones((1,) + native), [NDData(np.ones(native))]):
        batch = as_stamps(X).read(0, 1, SHAPE)
        assert batch.flag[0] & (SersicFlag.CROPPED | SersicFlag.PADDED) == flag


# -- item 11: uncertainties astropy accepts but that cannot be read -------------
@pytest.mark.parametrize("X, error, match", [
    ([NDData(np.ones(SHAPE), uncertainty=np.ones(SHAPE))], TypeError,
     "X\\[0\\].uncertainty is of unknown kind \\(UnknownUncertainty.*StdDevUncertainty"),
    (NDData(np.ones((2,) + SHAPE), uncertainty=np.ones((2,) + SHAPE)), TypeError,
     "X.uncertainty is of unknown kind.*InverseVariance"),
    ([NDData(np.ones(SHAPE), uncertainty=StdDevUncertainty(np.ones((4, 4))))], ValueError,
     "X\\[0\\].uncertainty of shape \\(4, 4\\) does not match the data's shape \\(16, 16\\)"),
    (NDData(np.ones((2,) + SHAPE), uncertainty=StdDevUncertainty(np.ones(SHAPE))), ValueError,
     "X.uncertainty of shape \\(16, 16\\) does not match the data's shape \\(2, 16, 16\\)"),
    ([NDData(np.ones(SHAPE), uncertainty=StdDevUncertainty(-np.ones(SHAPE)))], ValueError,
     "256 negative value\\(s\\).*a standard deviation cannot be negative"),
    ([NDData(np.ones(SHAPE), uncertainty=VarianceUncertainty(np.full(SHAPE, -1.0)))],
     ValueError, "a variance cannot be negative"),
    ([NDData(np.ones(SHAPE), uncertainty=InverseVariance(np.full(SHAPE, -1.0)))], ValueError,
     "an? inverse variance cannot be negative"),
], ids=["unknown in list", "unknown in stack", "shape in list", "shape in stack",
        "negative std", "negative variance", "negative ivar"])
def test_unreadable_uncertainty(X, error, match):
    with pytest.raises(error, match=match):
        as_stamps(X)


# -- other silent cases ---------------------------------------------------------
@pytest.mark.parametrize("X, error, match", [
    (None, TypeError, "X is None: pass cutouts"),
    ("cutouts.fits", TypeError, "X is a file name \\('cutouts.fits'\\): read the file first"),
    (Path("cutouts.fits"), TypeError, "X is a file name"),
    ((), ValueError, "X is empty"),
    (NDData(np.ones((0, 8, 8))), ValueError, "X is empty"),
    (NDData(np.ones(8)), ValueError, "an NDData must hold one 2-D cutout .*\\(8,\\)"),
    (NDData(np.ones((2, 8, 8, 1))), ValueError, "got data of shape \\(2, 8, 8, 1\\)"),
    ([np.ones((8, 8)), np.ones((8, 0))], ValueError, "X\\[1\\] has shape \\(8, 0\\): a cutout needs"),
    (NDData(np.ones((2, 0, 8))), ValueError, "cutouts of shape \\(0, 8\\)"),
    (np.ones((2, 8, 8), bool), TypeError, "X is boolean: pass pixel values; a bad"),
    ([NDData(np.ones((8, 8), bool))], TypeError, "X\\[0\\].data is boolean"),
    (np.full((2, 8, 8), "1.0"), TypeError, "X must hold numbers, not dtype <U3"),
    (np.array([[["a"]]], dtype=object), TypeError, "must hold numbers"),
    ([np.ones((8, 8)), np.ones((6, 6)) + 1j], ValueError, "Complex data not supported: X\\[1\\]"),
    (NDData(np.ones((2, 8, 8)) * 1j), ValueError, "Complex data not supported: X.data"),
    (np.ones((1, 8, 8)) * u.ABmag, u.UnitsError, "logarithmic unit mag\\(AB\\) cannot"),
    (np.full((1, 8, 8), 1e39), ValueError, "values up to 1e\\+39 exceed float32's"),
], ids=["None", "file name", "Path", "empty tuple", "empty stack", "1-D NDData", "4-D NDData",
        "0-pixel cutout", "0-pixel stack", "bool array", "bool NDData", "str array",
        "object strings", "complex in list", "complex stack", "magnitude pixels",
        "float32 overflow"])
def test_bad_cutouts(X, error, match):
    with pytest.raises(error, match=match):
        as_stamps(X).read(0, 1, (8, 8))


@pytest.mark.parametrize("dtype", ["complex64", "bool", "int8"])
def test_bad_on_disk_dtype(tmp_path, dtype):
    with h5py.File(tmp_path / "x.h5", "w") as f:
        dataset = f.create_dataset("X", data=np.ones((2, 8, 8), dtype))
        if dtype == "int8":  # integers are pixel values: read them
            assert as_stamps(dataset).read(0, 2, (8, 8)).data.sum() == 128
        else:
            with pytest.raises(ValueError, match=f"must be numeric .* dtype {dtype}"):
                as_stamps(dataset)


def test_values_beyond_float32_under_the_mask_are_fine():
    image = np.ones((8, 8))
    image[0, 0] = 1e39
    mask = np.zeros((8, 8), bool)
    mask[0, 0] = True
    batch = as_stamps([NDData(image, mask=mask)]).read(0, 1, (8, 8))
    assert batch.mask[0, 0, 0] and batch.data[0, 0, 0] == 0


def test_all_nan_cutout_is_masked_and_flagged():
    X = np.ones((2, 8, 8))
    X[1] = np.nan
    batch = as_stamps(X).read(0, 2, (8, 8))
    assert batch.flag.tolist() == [0, SersicFlag.MASKED]
    assert batch.mask[1].all() and not batch.data[1].any()


def test_ragged_object_array_is_a_list_of_cutouts():
    X = np.empty(2, dtype=object)
    X[0], X[1] = np.ones((8, 8)), np.ones((10, 6))
    stamps = as_stamps(X)
    assert len(stamps) == 2 and sorted(stamps.shapes) == [(8, 8), (10, 6)]


def test_object_array_of_numbers_is_read():
    X = np.ones((1, 8, 8)).astype(object)
    assert as_stamps(X).read(0, 1, (8, 8)).data.sum() == 64


@pytest.mark.parametrize("mask, error, match", [
    (np.zeros(8, bool), ValueError, "X\\[0\\].mask of shape \\(8,\\) does not match"),
    (np.zeros((1, 8), bool), ValueError, "X\\[0\\].mask of shape \\(1, 8\\)"),
    (np.full((8, 8), "no"), TypeError, "X\\[0\\].mask must be boolean .* <U2"),
])
def test_bad_masks(mask, error, match):
    with pytest.raises(error, match=match):
        as_stamps([NDData(np.ones((8, 8)), mask=mask)])


def test_integer_bitmask_marks_bad_pixels():
    mask = np.zeros((8, 8), np.uint16)
    mask[0] = 4  # a data-quality bit
    batch = as_stamps([NDData(np.ones((8, 8)), mask=mask)]).read(0, 1, (8, 8))
    assert batch.mask[0, 0].all() and not batch.mask[0, 1:].any()


@pytest.mark.parametrize("meta, expected", [
    ({"MAGZERO": "27.5"}, 27.5),  # a number written as text in a header
    ({"magzpt": 26}, 26.0),  # any case
    ({"zeropoint": np.nan}, 20.0),  # unknown: the keyword's
    ({}, 20.0),
], ids=["text", "lower-case key", "NaN", "none"])
def test_meta_zeropoint_values(meta, expected):
    assert as_stamps([NDData(np.ones((8, 8)), meta=meta)], zeropoint=20.0).zeropoint[0] \
        == expected


@pytest.mark.parametrize("X, error, match", [
    ([NDData(np.ones((8, 8)), meta={"MAGZERO": "n/a"})], TypeError,
     "X\\[0\\]'s meta\\['MAGZERO'\\] must be one AB zeropoint \\(a real number\\); got 'n/a'"),
    ([NDData(np.ones((8, 8)), meta={"zeropoint": np.inf})], ValueError,
     "X\\[0\\]'s meta\\['zeropoint'\\] must be finite; got inf"),
    ([NDData(np.ones((8, 8)), meta={"PHOTZP": True})], TypeError, "got True"),
    ([NDData(np.ones((8, 8)), meta={"zeropoint": [25.0, 26.0]})], TypeError,
     "must be one AB zeropoint"),
    (NDData(np.ones((3, 8, 8)), meta={"zeropoint": [25.0, 26.0]}), ValueError,
     "meta\\['zeropoint'\\] of a 3-D NDData must have one value per cutout \\(3\\)"),
    (NDData(np.ones((2, 8, 8)), meta={"pixel_scale": [0.1, -0.1]}), ValueError,
     "X.meta\\['pixel_scale'\\] must hold positive, finite pixel scales .*got \\[-0.1\\]"),
    ([NDData(np.ones((8, 8)), meta={"pixel_scale": 0.0})], ValueError,
     "X\\[0\\].meta\\['pixel_scale'\\] must hold positive"),
    (NDData(np.ones((2, 8, 8)), meta={"pixel_scale": ["a", "b"]}), TypeError,
     "must hold pixel scales"),
    (NDData(np.ones((2, 8, 8)), meta={"pixel_scale": 1 * u.m}), u.UnitsError,
     "meta\\['pixel_scale'\\] must be an angle per pixel"),
    (NDData(np.ones((2, 8, 8)), meta={"flag": [0, -1]}), ValueError,
     "X.meta\\['flag'\\] must hold non-negative integer SersicFlag bits; got \\[-1\\]"),
    ([NDData(np.ones((8, 8)), meta={"flag": 1.5})], ValueError,
     "X\\[0\\].meta\\['flag'\\] must hold non-negative integer"),
    ([NDData(np.ones((8, 8)), meta={"flag": "PADDED"})], TypeError,
     "must hold SersicFlag integers"),
    ([NDData(np.ones((8, 8)), meta={"flag": [1, 2]})], ValueError,
     "X\\[0\\].meta\\['flag'\\] must be one SersicFlag integer"),
], ids=["text zeropoint", "infinite zeropoint", "bool zeropoint", "zeropoint array",
        "stack zeropoints length", "negative stack scale", "zero cutout scale",
        "text scales", "scale in metres", "negative flag", "fractional flag", "text flag",
        "flag array"])
def test_bad_meta(X, error, match):
    with pytest.raises(error, match=match):
        as_stamps(X)


@pytest.mark.parametrize("pixel_scale, error, match", [
    (-0.1, ValueError, "pixel_scale must be positive, got -0.1"),
    (np.inf, ValueError, "pixel_scale must be finite, got inf"),
    (np.nan, ValueError, "pixel_scale must be positive, got nan"),
    ("0.06", TypeError, "pixel_scale must be one number \\(arcsec/pixel\\)"),
    (True, TypeError, "pixel_scale must be one number"),
    ([0.06, 0.1], TypeError, "pixel_scale must be one number"),
    (1 * u.m, u.UnitsError, "pixel_scale must be an angle per pixel .*got unit Unit\\(\"m\"\\)"),
    (-1 * u.arcsec / u.pix, ValueError, "pixel_scale must be positive"),
], ids=["negative", "inf", "nan", "text", "bool", "list", "metres", "negative Quantity"])
def test_bad_pixel_scale(pixel_scale, error, match):
    with pytest.raises(error, match=match):
        as_stamps(np.ones((1, 8, 8)), pixel_scale=pixel_scale)


@pytest.mark.parametrize("pixel_scale", [0.06 * u.arcsec / u.pix, 0.06 * u.arcsec,
                                         60 * u.mas / u.pix, 0.06 / 3600 * u.deg], ids=str)
def test_pixel_scale_quantities(pixel_scale):
    np.testing.assert_allclose(as_stamps(np.ones((1, 8, 8)), pixel_scale=pixel_scale)
                               .pixel_scale, 0.06)


@pytest.mark.parametrize("zeropoint, error, match", [
    ("25.9", TypeError, "zeropoint must be one AB zeropoint \\(a real number\\); got '25.9'"),
    (np.inf, ValueError, "zeropoint must be finite; got inf"),
    ([25.0], TypeError, "zeropoint must be one AB zeropoint"),
    (25 * u.nJy, TypeError, "zeropoint must be one AB zeropoint"),
], ids=["text", "inf", "list", "flux Quantity"])
def test_bad_zeropoint_keyword(zeropoint, error, match):
    with pytest.raises(error, match=match):
        as_stamps(np.ones((1, 8, 8)), zeropoint=zeropoint)


def test_zeropoint_keyword_in_magnitudes():
    assert as_stamps(np.ones((1, 8, 8)), zeropoint=25.5 * u.ABmag).zeropoint[0] == 25.5


def test_meta_pixel_scale_of_a_2d_cutout_is_read():
    X = [NDData(np.ones((8, 8)), meta={"pixel_scale": 0.2}),
         NDData(np.ones((8, 8)), wcs=_celestial_wcs(0.06)), NDData(np.ones((8, 8)))]
    np.testing.assert_allclose(as_stamps(X, pixel_scale=0.5).pixel_scale, [0.2, 0.06, 0.5])


def test_wcs_without_celestial_axes_falls_back_to_the_keyword():
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["WAVE", "FREQ"]
    assert as_stamps([NDData(np.ones((8, 8)), wcs=wcs)], pixel_scale=0.3).pixel_scale[0] == 0.3
    assert np.isnan(as_stamps([NDData(np.ones((8, 8)), wcs=wcs)]).pixel_scale[0])


@pytest.mark.parametrize("X, match", [
    ([NDData(np.ones((8, 8)), unit=E_S), np.ones((8, 8))],
     "some cutouts have a unit and some do not \\(X\\[1\\] has none, X\\[0\\] has one\\)"),
    ([np.ones((8, 8)), np.ones((8, 8)) * E_S],
     "some cutouts have a unit and some do not \\(X\\[0\\] has none"),
    ([NDData(np.ones((8, 8)), unit=E_S), NDData(np.ones((8, 8)), unit=u.s)],
     "X\\[1\\]'s unit Unit\\(\"s\"\\) cannot be converted to .*, the unit of X\\[0\\]"),
    ([NDData(np.ones((8, 8)), unit=u.mag)], "logarithmic unit mag cannot be summed"),
], ids=["NDData and array", "array and Quantity", "incompatible units", "magnitude unit"])
def test_unit_mismatches_within_a_list(X, match):
    with pytest.raises(u.UnitsError, match=match):
        as_stamps(X)


def test_ccddata_read_from_a_fits_file(tmp_path):
    header = fits.Header({"BUNIT": "electron/min", "MAGZERO": ZEROPOINT + 2.5 * np.log10(60)})
    # FITS stores big-endian numbers.
    fits.writeto(tmp_path / "cutout.fits", _in(E_MIN).astype(">f4"), header)
    cutout = CCDData.read(tmp_path / "cutout.fits")
    assert cutout.data.dtype.byteorder == ">" and cutout.unit == E_MIN
    stamps = as_stamps(cutout, zeropoint=0.0)  # the header's zeropoint is more specific
    np.testing.assert_allclose(_magnitude(stamps, E_S), TRUE_MAG, atol=1e-5)


@pytest.mark.parametrize("dtype", [">f8", ">i4", "float16", "uint16"])
def test_other_pixel_dtypes(dtype):
    X = np.full((1, 8, 8), 3, dtype=dtype)
    assert as_stamps(X).read(0, 1, (8, 8)).data.sum() == 192


def test_meta_zeropoint_of_none_is_unknown():
    stamps = as_stamps([NDData(np.ones((8, 8)), meta={"zeropoint": None})])
    assert np.isnan(stamps.zeropoint[0])

