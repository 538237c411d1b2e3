"""metrics.r2_table, catalog label conversion and flags, preprocessing transformers."""

import astropy.units as u
import numpy as np
import pytest
from astropy.nddata import NDData, StdDevUncertainty
from astropy.table import QTable
from sklearn.metrics import r2_score

from astromorphnet.catalog import SersicFlag, labels_to_array, make_catalog
from astromorphnet.metrics import r2_table
from astromorphnet.preprocessing import CutoutCropper, ImageNormalizer


def test_r2_table_matches_sklearn(rng):
    truth = rng.uniform(0.2, 0.9, size=(50, 4))  # inside every physical range
    pred = truth + rng.normal(scale=0.3, size=truth.shape)
    table = r2_table(truth, {"a": pred, "b": truth})
    assert table["model"].tolist() == ["a", "b"]
    expected = r2_score(truth, pred, multioutput="raw_values")
    np.testing.assert_allclose([table[c][0] for c in ("mag", "r_eff", "sersic_n",
                                                      "ellipticity")], expected)
    assert [table[c][1] for c in ("mag", "sersic_n")] == [1.0, 1.0]


def test_r2_table_from_catalogs(rng):
    values = rng.uniform(1, 5, size=(20, 2))
    truth = QTable({"r_eff": values[:, 0] * u.pix, "sersic_n": values[:, 1]})
    catalog = make_catalog(values + 0.1, ("r_eff", "sersic_n"), flag=np.zeros(20))
    table = r2_table(truth, catalog)
    assert table.colnames == ["model", "r_eff", "sersic_n"]
    with pytest.raises(ValueError, match="predictions of 'x' have shape \\(10, 2\\)"):
        r2_table(truth, {"x": values[:10]}, targets=("r_eff", "sersic_n"))


def test_make_catalog_units_and_meta():
    catalog = make_catalog(np.array([[20.0, 4.0, 1.0, 0.3]]),
                           ("mag", "r_eff", "sersic_n", "ellipticity"),
                           flag=[SersicFlag.PADDED], pixel_scale=np.array([0.06]),
                           meta={"model": "x"})
    assert catalog["mag"].unit == u.ABmag
    assert catalog["r_eff_arcsec"][0].to_value(u.arcsec) == pytest.approx(0.24)
    assert catalog["flag"][0] == 1 and catalog.meta["model"] == "x"


def test_labels_accept_magnitudes_in_other_forms():
    table = QTable({"mag": [20.0] * u.ABmag})
    assert labels_to_array(table, ("mag",))[0, 0] == 20.0
    flux = QTable({"mag": [3631.0] * u.Jy})  # a flux density converts to AB mag
    assert labels_to_array(flux, ("mag",))[0, 0] == pytest.approx(0.0, abs=1e-3)
    with pytest.raises(ValueError, match="y contains infinite values"):
        labels_to_array(np.array([np.inf]), ("mag",))
    with pytest.raises(ValueError, match="targets must be distinct names"):
        labels_to_array(np.ones((2, 2)), ("mag", "mag"))


def test_cropper_output_and_errors():
    cutouts = [NDData(np.ones((40, 40)), uncertainty=StdDevUncertainty(np.ones((40, 40))),
                      unit=u.nJy),
               NDData(np.ones((20, 30)), unit=u.nJy)]
    stack = CutoutCropper(size=(32, 36)).fit_transform(cutouts)
    assert stack.data.shape == (2, 32, 36) and stack.unit == u.nJy
    assert stack.mask[1].sum() == 32 * 36 - 20 * 30
    assert stack.meta["flag"][1] & SersicFlag.PADDED
    assert stack.meta["zeropoint"][0] == pytest.approx(31.4, abs=1e-3)  # from nJy
    with pytest.raises(ValueError, match="size must be a positive int"):
        CutoutCropper(size=0).fit(cutouts)


def test_normalizer_scale_stretch_and_units(rng):
    images = rng.normal(0, 0.5, size=(20, 24, 24))
    norm = ImageNormalizer(stretch="linear").fit(images * u.uJy)
    assert norm.scale_ == pytest.approx(0.5, rel=0.05)
    out = norm.transform(images * 1000 * u.nJy)  # converted back to uJy first
    np.testing.assert_allclose(out.data, images / norm.scale_, rtol=1e-5)
    with pytest.raises(u.UnitsError, match="cannot be converted"):
        norm.transform(images * u.s)
    asinh = ImageNormalizer(softening=2.0).fit(images)
    np.testing.assert_allclose(asinh.transform(images).data,
                               np.arcsinh(images / (2.0 * asinh.scale_)), rtol=1e-5)
    with pytest.warns(UserWarning, match="no background noise"):
        assert ImageNormalizer().fit(np.zeros((3, 8, 8))).scale_ == 1.0
    with pytest.raises(ValueError, match="put a CutoutCropper"):
        asinh.transform([np.ones((8, 8)), np.ones((9, 9))])
