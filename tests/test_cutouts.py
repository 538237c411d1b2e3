"""Cutouts from a mosaic (photutils segmentation) and the catalog selection helpers."""

import subprocess
import sys

import astropy.units as u
import numpy as np
import pytest
from astropy.coordinates import SkyCoord
from astropy.io import fits
from astropy.nddata import CCDData, Cutout2D, NDData, StdDevUncertainty
from astropy.table import QTable, Table
from astropy.utils.exceptions import AstropyUserWarning
from astropy.wcs import WCS
from photutils.segmentation import deblend_sources, detect_sources
from photutils.utils import NoDetectionsWarning

from astromorphnet._input import as_stamps
from astromorphnet.catalog import SersicFlag
from astromorphnet.cutouts import _extract
from astromorphnet.cutouts import (extract_cutouts, mask_neighbours, match_parameter_ranges,
                                   parameter_ranges, select_magnitude)

SHAPE = (256, 256)
PIXEL_SCALE = 0.06  # arcsec / pixel
NOISE = 1.0
SIZE = 32
# Fractional parts near .25 keep positions away from where Cutout2D's rounding flips
# (integers for even sizes, half-integers for odd ones) under sky <-> pixel round-off.
ISOLATED = [(40.25, 40.3), (100.3, 45.2), (160.2, 38.3), (215.3, 42.2), (45.2, 100.3),
            (105.3, 105.2), (160.2, 98.3), (40.3, 165.2), (100.2, 160.3), (210.3, 170.2),
            (60.3, 215.2), (150.2, 210.3)]
PAIR = [(195.3, 100.2), (204.2, 104.3)]  # blended: deblending splits them
EDGE = [(3.3, 120.2)]
TRUTH = np.array(ISOLATED + PAIR + EDGE)


def make_wcs(shape=SHAPE):
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    wcs.wcs.crval = [150.1, 2.2]
    wcs.wcs.crpix = [shape[1] / 2 + 0.5, shape[0] / 2 + 0.5]
    wcs.wcs.cdelt = [-PIXEL_SCALE / 3600, PIXEL_SCALE / 3600]
    wcs.wcs.cunit = ["deg", "deg"]
    return wcs


def make_mosaic(positions=TRUTH, shape=SHAPE, seed=3):
    """Elliptical Gaussian galaxies on a sloped background with Gaussian noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:shape[0], :shape[1]]
    image = 5.0 + 0.004 * xx + rng.normal(0.0, NOISE, shape)
    for x0, y0 in positions:
        sigma, q, theta = rng.uniform(1.8, 2.6), rng.uniform(0.5, 1.0), rng.uniform(0, np.pi)
        dx, dy = xx - x0, yy - y0
        a = dx * np.cos(theta) + dy * np.sin(theta)
        b = -dx * np.sin(theta) + dy * np.cos(theta)
        image += rng.uniform(40, 80) * np.exp(-0.5 * ((a / sigma) ** 2 + (b / (q * sigma)) ** 2))
    return image


@pytest.fixture(scope="module")
def mosaic():
    return make_mosaic()


@pytest.fixture(scope="module")
def detected(mosaic):
    return extract_cutouts(mosaic, size=SIZE, wcs=make_wcs())


def nearest(table, xy):
    """Index of the table row nearest to pixel ``xy`` and its distance."""
    d = np.hypot(table["x"].value - xy[0], table["y"].value - xy[1])
    return int(np.argmin(d)), float(d.min())


def cutouts_equal(first, second):
    assert len(first) == len(second)
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a.data, b.data)  # NaN padding compares equal
        np.testing.assert_array_equal(a.mask, b.mask)
        assert a.meta["label"] == b.meta["label"] and a.meta["flag"] == b.meta["flag"]


def test_import_is_light():
    code = ("import sys, astromorphnet.cutouts\n"
            "heavy = [m for m in ('tensorflow', 'keras', 'galsim') if m in sys.modules]\n"
            "assert not heavy, heavy\n")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_detection_finds_the_galaxies(detected):
    cutouts, table, segm, bkg = detected
    assert len(cutouts) == len(table) == len(TRUTH) == segm.n_labels
    for xy in TRUTH:
        _, distance = nearest(table, xy)
        assert distance < 1.0
    assert table.colnames == ["id", "x", "y", "skycoord", "label", "area", "segment_flux",
                              "flag"]
    assert table["x"].unit == u.pix and table["area"].unit == u.pix**2
    assert table["segment_flux"].unit == u.dimensionless_unscaled and np.all(table["segment_flux"].value > 0)
    assert table.meta["positions"] == "detected"
    for row, cutout in zip(table, cutouts):
        assert isinstance(cutout, CCDData)
        assert cutout.shape == (SIZE, SIZE) and cutout.unit == u.dimensionless_unscaled
        assert cutout.uncertainty is None  # no error/weight given
        assert cutout.meta["id"] == row["id"] and cutout.meta["label"] == row["label"]
        assert cutout.meta["x"] == pytest.approx(row["x"].value)
        assert cutout.meta["flag"] == row["flag"]
    # The background (5 + a slope) is subtracted: empty sky averages ~0.
    data = cutouts[0].data
    assert abs(np.median(np.concatenate([data[0], data[-1], data[:, 0], data[:, -1]]))) < 0.5
    assert np.abs(bkg.background.mean() - 5.5) < 0.3


def test_deblending_splits_the_blended_pair(mosaic):
    merged = extract_cutouts(mosaic, size=SIZE, deblend=False)
    assert len(merged.cutouts) == len(TRUTH) - 1
    for xy in PAIR:
        assert nearest(merged.table, xy)[1] > 3  # one centroid between the two


def test_deblending_only_the_segments_that_can_split_changes_nothing():
    # Crowded and noisy: many segments, some with several peaks, some split.
    rng = np.random.default_rng(5)
    positions = rng.uniform(10, 246, (60, 2))
    data = make_mosaic(positions, seed=5) - 5.0
    convolved = _extract._smooth(data, 3.0)
    segm = detect_sources(convolved, 1.5 * NOISE, 10)
    every = deblend_sources(convolved, segm, 10, n_levels=32, contrast=0.001,
                            progress_bar=False)
    fast = _extract._deblend(convolved, segm, 10, 32, 0.001)
    assert every.n_labels > segm.n_labels  # some segments do split
    # The same partition of the pixels, whatever the numbering.
    pairs = set(zip(every.data.ravel().tolist(), fast.data.ravel().tolist()))
    assert len(pairs) == every.n_labels + 1 == fast.n_labels + 1


@pytest.mark.parametrize("shape, box, filter_size", [((300, 200), (64, 50), 3),
                                                    ((130, 77), (32, 32), (3, 5)),
                                                    ((64, 64), (64, 64), 1)])
def test_background_maps_equal_photutils(shape, box, filter_size):
    from photutils.background import Background2D

    rng = np.random.default_rng(3)
    data = rng.normal(0.0, 1.0, shape) + np.linspace(0.0, 3.0, shape[1])
    data[: shape[0] // 3, : shape[1] // 3] += 5.0  # a step the mesh filter must smooth
    reference = Background2D(data, box, filter_size=filter_size)
    fast = _extract._Background2D(data, box, filter_size=filter_size)
    for name in ("background", "background_rms"):
        np.testing.assert_array_equal(getattr(fast, f"{name}_mesh"),
                                      getattr(reference, f"{name}_mesh"))
        np.testing.assert_allclose(_extract._full_map(fast, name, data),
                                   getattr(reference, name), rtol=0, atol=1e-12)


def test_separable_smoothing_equals_astropy_convolve():
    from astropy.convolution import convolve
    from photutils.segmentation import make_2dgaussian_kernel

    data = np.random.default_rng(4).normal(0.0, 1.0, (70, 90))
    for fwhm in (2.0, 3.0, 4.5):
        kernel = make_2dgaussian_kernel(fwhm, size=2 * int(np.ceil(fwhm)) + 1)
        np.testing.assert_allclose(_extract._smooth(data, fwhm), convolve(data, kernel),
                                   rtol=0, atol=1e-12)


def test_segment_sums_equal_whole_image_sums(mosaic):
    found = extract_cutouts(mosaic, size=SIZE)
    segm, data = found.segmentation, np.asarray(mosaic, float)
    labels = np.append(found.table["label"], 0)  # a position on no segment too
    areas, fluxes = _extract._segment_sums(data, segm, labels)
    for label, area, flux in zip(labels[:-1], areas, fluxes):
        assert area == np.count_nonzero(segm.data == label)
        assert flux == pytest.approx(data[segm.data == label].sum(), rel=1e-9)
    assert areas[-1] == 0 and np.isnan(fluxes[-1])


def test_deblending_without_scikit_image_fails_at_once(monkeypatch, mosaic):
    import importlib.util

    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "skimage" else find_spec(name, *a))
    with pytest.raises(ImportError, match="needs scikit-image.*or pass deblend=False"):
        extract_cutouts(mosaic)
    assert len(extract_cutouts(mosaic, deblend=False).cutouts) == len(TRUTH) - 1


def test_positions_in_any_form_give_the_same_cutouts(mosaic, detected):
    wcs = make_wcs()
    x, y = TRUTH.T
    sky = wcs.pixel_to_world(x, y)
    by_pixel = extract_cutouts(mosaic, TRUTH, size=SIZE, wcs=wcs)
    assert by_pixel.table.meta["positions"] == "given"
    np.testing.assert_allclose(by_pixel.table["x"].value, x)
    forms = [sky, list(map(tuple, TRUTH)), QTable({"x": x * u.pix, "y": y * u.pix}),
             Table({"x_centroid": x, "y_centroid": y}),
             Table({"ra": sky.ra.deg, "dec": sky.dec.deg}),
             QTable({"ra": sky.ra, "dec": sky.dec}), QTable({"sky_centroid": sky}),
             by_pixel.table]
    for positions in forms:
        cutouts_equal(extract_cutouts(mosaic, positions, size=SIZE, wcs=wcs).cutouts,
                      by_pixel.cutouts)
    # Given positions find the segments that detection made.
    for row in by_pixel.table:
        i, _ = nearest(detected.table, (row["x"].value, row["y"].value))
        assert row["label"] == detected.table["label"][i]
        assert row["area"] == detected.table["area"][i]


def test_cutouts_keep_the_wcs(detected):
    scale = PIXEL_SCALE * u.arcsec
    for cutout, row in zip(detected.cutouts, detected.table):
        centre = cutout.wcs.pixel_to_world((SIZE - 1) / 2, (SIZE - 1) / 2)
        assert centre.separation(row["skycoord"]) < 0.71 * scale  # within half a pixel
        # The source's sky position falls on its brightest pixel.
        if not cutout.meta["flag"] & SersicFlag.PADDED:
            px, py = cutout.wcs.world_to_pixel(row["skycoord"])
            peak = np.unravel_index(np.nanargmax(np.where(cutout.mask, np.nan, cutout.data)),
                                    cutout.shape)
            assert abs(peak[0] - py) <= 1 and abs(peak[1] - px) <= 1


def test_cutouts_are_cutout2d_cutouts(mosaic, detected):
    # Placement, NaN padding and WCS as Cutout2D gives them, edge sources included.
    background = _extract._full_map(detected.background, "background", np.asarray(mosaic))
    data = (mosaic - background).astype(mosaic.dtype)
    assert any(c.meta["flag"] & SersicFlag.PADDED for c in detected.cutouts)
    for cutout in detected.cutouts:
        reference = Cutout2D(data, (cutout.meta["x"], cutout.meta["y"]), SIZE, wcs=make_wcs(),
                             mode="partial", fill_value=np.nan)
        np.testing.assert_allclose(cutout.data, reference.data, rtol=1e-6, atol=1e-6)
        np.testing.assert_array_equal(cutout.wcs.wcs.crpix, reference.wcs.wcs.crpix)


@pytest.mark.parametrize("dilate", [0, 2])
def test_neighbours_are_masked_not_the_source(mosaic, dilate):
    result = extract_cutouts(mosaic, np.array(PAIR), size=SIZE, wcs=make_wcs(), dilate=dilate)
    (first, second), segm = result.cutouts, result.segmentation
    assert first.meta["label"] != second.meta["label"] and first.meta["label"] > 0
    for cutout in (first, second):
        seg = Cutout2D(segm.data, (cutout.meta["x"], cutout.meta["y"]), SIZE,
                       mode="partial", fill_value=0).data
        own, others = seg == cutout.meta["label"], (seg != 0) & (seg != cutout.meta["label"])
        assert others.sum() > 20 and own.sum() > 20
        assert not cutout.mask[own].any()  # the source's own segment is never masked
        assert cutout.mask[others].all()
        if dilate == 0:
            np.testing.assert_array_equal(cutout.mask, others)
        else:
            assert cutout.mask.sum() > others.sum()  # grown into the wings
    # Isolated galaxies' cutouts hold no neighbour at all.
    alone = extract_cutouts(mosaic, np.array(ISOLATED[:1]), size=SIZE, dilate=dilate)
    assert not alone.cutouts[0].mask.any() and alone.table["flag"][0] == 0


def test_edge_cutouts_are_padded_flagged_and_kept(mosaic, detected):
    i, distance = nearest(detected.table, EDGE[0])
    assert distance < 1.0
    cutout = detected.cutouts[i]
    assert detected.table["flag"][i] & SersicFlag.PADDED
    assert cutout.meta["flag"] & SersicFlag.PADDED and cutout.shape == (SIZE, SIZE)
    off = np.isnan(cutout.data)
    assert off[:, :10].all() and not off[:, 20:].any()  # x = 3.3: ~12 columns off-image
    assert cutout.mask[off].all()
    # A corner position: most of it off the mosaic, so flagged MASKED too.
    corner = extract_cutouts(mosaic, [[0.0, 0.0]], size=SIZE)
    assert corner.table["flag"][0] == SersicFlag.PADDED | SersicFlag.MASKED
    assert len(corner.cutouts) == 1 and corner.cutouts[0].mask.mean() > 0.7
    # Positions inside the mosaic only: none is dropped.
    others = [c for c in detected.cutouts if not c.meta["flag"]]
    assert len(others) == len(TRUTH) - 1


def test_uncertainty_from_weight_and_error(mosaic):
    weight = np.full(SHAPE, 1 / 4.0)  # sigma = 2
    weight[30:50, 30:50] = 0.0  # no data: masked
    result = extract_cutouts(mosaic, [ISOLATED[0]], size=SIZE, weight=weight)
    cutout = result.cutouts[0]
    assert isinstance(cutout.uncertainty, StdDevUncertainty)
    std = cutout.uncertainty.array
    zero = np.isinf(std)
    assert zero.sum() == 400 and cutout.mask[zero].all()
    np.testing.assert_allclose(std[~zero], 2.0)

    error = np.full(SHAPE, 2.0)
    error[100, 100] = np.nan
    result = extract_cutouts(mosaic, [ISOLATED[5]], size=SIZE, error=error * u.adu)
    cutout = result.cutouts[0]
    assert np.isnan(cutout.uncertainty.array).sum() == 1
    assert cutout.mask[np.isnan(cutout.uncertainty.array)].all()
    np.testing.assert_allclose(np.nanmax(cutout.uncertainty.array), 2.0)

    # An NDData's uncertainty, mask and unit are used; duplicate keywords warn.
    nd = NDData(mosaic, uncertainty=StdDevUncertainty(np.full(SHAPE, 3.0)),
                mask=np.zeros(SHAPE, bool), unit=u.electron / u.s, wcs=make_wcs(),
                meta={"MAGZERO": 25.94})
    with pytest.warns(AstropyUserWarning, match="'error' keyword is ignored") as record:
        result = extract_cutouts(nd, [ISOLATED[5]], size=SIZE, error=error)
    assert record[0].filename == __file__  # the warning points at the caller
    cutout = result.cutouts[0]
    assert cutout.unit == u.electron / u.s and result.table["segment_flux"].unit == cutout.unit
    np.testing.assert_allclose(cutout.uncertainty.array, 3.0)
    assert cutout.meta["zeropoint"] == 25.94
    assert "skycoord" in result.table.colnames


def test_mask_is_carried_into_the_cutouts(mosaic):
    mask = np.zeros(SHAPE, bool)
    mask[40, 30] = True
    mosaic = mosaic.copy()
    mosaic[41, 30] = np.nan
    result = extract_cutouts(mosaic, [ISOLATED[0]], size=SIZE, mask=mask)
    cutout = result.cutouts[0]
    rows, cols = np.nonzero(cutout.mask)
    assert sorted(zip(rows.tolist(), cols.tolist())) == [(15, 5), (16, 5)]  # origin (25, 25)


def test_fits_paths(tmp_path, mosaic):
    header = make_wcs().to_header()
    fits.PrimaryHDU(mosaic.astype(np.float32), header=header).writeto(tmp_path / "sci.fits")
    weight = np.full(SHAPE, 1.0, np.float32)
    weight[:, :8] = 0.0
    # Weights in an extension, behind an empty primary HDU.
    fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(weight)]).writeto(tmp_path / "wht.fits")
    from_path = extract_cutouts(tmp_path / "sci.fits", size=SIZE,
                                weight=str(tmp_path / "wht.fits"))
    from_array = extract_cutouts(mosaic.astype(np.float32), size=SIZE, wcs=make_wcs(),
                                 weight=weight)
    cutouts_equal(from_path.cutouts, from_array.cutouts)
    assert from_path.cutouts[0].data.dtype == np.float32
    assert from_path.cutouts[0].unit == u.dimensionless_unscaled  # no BUNIT
    assert "skycoord" in from_path.table.colnames
    np.testing.assert_allclose(from_path.table["x"].value, from_array.table["x"].value)

    # A CCDData written to FITS keeps its unit; positions in the FITS WCS's sky.
    ccd = CCDData(mosaic, unit="electron/s", wcs=make_wcs())
    ccd.write(tmp_path / "ccd.fits")
    sky = make_wcs().pixel_to_world(*TRUTH[:3].T)
    result = extract_cutouts(str(tmp_path / "ccd.fits"), sky, size=SIZE)
    assert result.cutouts[0].unit == u.electron / u.s
    np.testing.assert_allclose(result.table["x"].value, TRUTH[:3, 0], atol=1e-6)


def test_no_detection_warns_and_returns_nothing():
    noise = np.random.default_rng(0).normal(0.0, 1.0, (64, 64))
    with pytest.warns(NoDetectionsWarning, match="no source detected in the mosaic"):
        result = extract_cutouts(noise, size=SIZE, threshold=50)
    assert result.cutouts == [] and len(result.table) == 0 and result.segmentation is None
    assert "segment_flux" in result.table.colnames
    # With positions, the cutouts are made all the same (no segment to mask).
    result = extract_cutouts(noise, [[20.2, 30.3]], size=SIZE, threshold=50)
    assert len(result.cutouts) == 1 and result.table["label"][0] == 0
    assert result.table["area"][0] == 0 and np.isnan(result.table["segment_flux"][0])


@pytest.mark.parametrize(("mosaic", "kwargs", "match"), [
    (np.zeros((4, 4, 4)), {}, r"must be a 2-D image; got an array of shape \(4, 4, 4\)"),
    (np.zeros((0, 5)), {}, r"the mosaic is empty \(shape \(0, 5\)\)"),
    (np.full((8, 8), np.nan), {}, "no finite, unmasked pixel"),
    (np.ones((8, 8)), {"mask": np.ones((8, 8), bool)}, "no finite, unmasked pixel"),
    (np.ones((8, 8)), {"weight": np.zeros((8, 8))}, "no finite, unmasked pixel"),
    (np.array([["a"]]), {}, "must hold real numbers"),
    (np.ones((8, 8)), {"size": 0}, "size must be a positive int"),
    (np.ones((8, 8)), {"size": (16, -2)}, "size must be a positive int"),
    (np.ones((8, 8)), {"size": 2.5}, "size must be a positive int"),
    (np.ones((8, 8)), {"positions": SkyCoord(150.1, 2.2, unit="deg")},
     "sky coordinates need a celestial WCS"),
    (np.ones((8, 8)), {"positions": Table({"ra": [150.1], "dec": [2.2]})},
     "sky coordinates need a celestial WCS"),
    (np.ones((8, 8)), {"positions": np.ones((3, 3))}, r"shape \(N, 2\).*got shape \(3, 3\)"),
    (np.ones((8, 8)), {"positions": [1.0, 2.0]}, r"shape \(N, 2\).*got shape \(2,\)"),
    (np.ones((8, 8)), {"positions": [[1.0, np.nan]]}, "positions must be finite"),
    (np.ones((8, 8)), {"positions": [[1.0, 2.0], [9.0, 2.0]]},
     r"1 position\(s\) lie outside the 8x8 mosaic \(indices \[1\]\)"),
    (np.ones((8, 8)), {"positions": Table({"a": [1.0]})}, "positions table needs pixel"),
    (np.ones((8, 8)), {"error": np.ones((8, 8)), "weight": np.ones((8, 8))},
     "either error .* or weight"),
    (np.ones((8, 8)), {"error": np.ones((8, 9))}, r"error must have the mosaic's shape"),
    (np.ones((8, 8)), {"wcs": "RA---TAN"}, "wcs must be an astropy.wcs.WCS"),
    (np.ones((8, 8)), {"threshold": 0}, "threshold must be positive"),
    (np.ones((8, 8)), {"n_pixels": 0}, "n_pixels must be a positive int"),
    (np.ones((8, 8)), {"kernel_fwhm": -1}, "kernel_fwhm must be positive"),
    (np.ones((8, 8)), {"n_levels": 0}, "n_levels must be a positive int"),
    (np.ones((8, 8)), {"contrast": 2}, r"contrast must lie in \[0, 1\]"),
    (np.ones((8, 8)), {"dilate": 1.5}, "dilate must be a non-negative int"),
])
def test_validation_errors(mosaic, kwargs, match):
    error = TypeError if "wcs" in kwargs else ValueError
    with pytest.raises(error, match=match):
        extract_cutouts(mosaic, **kwargs)


def test_fits_without_image_raises(tmp_path):
    fits.HDUList([fits.PrimaryHDU()]).writeto(tmp_path / "empty.fits")
    with pytest.raises(ValueError, match="holds no image HDU"):
        extract_cutouts(tmp_path / "empty.fits")


def test_cutouts_feed_the_estimators_input(mosaic):
    weight = np.full(SHAPE, 1.0)
    result = extract_cutouts(mosaic, size=SIZE, wcs=make_wcs(), weight=weight)
    stamps = as_stamps(result.cutouts)
    assert len(stamps) == len(TRUTH) and stamps.unit is None  # dimensionless: no unit
    np.testing.assert_allclose(stamps.pixel_scale, PIXEL_SCALE)
    batch = stamps.read(0, len(stamps), (SIZE, SIZE))
    assert np.isfinite(batch.data).all() and np.isfinite(batch.std[~batch.mask]).all()
    for cutout, mask, data in zip(result.cutouts, batch.mask, batch.data):
        np.testing.assert_array_equal(mask, cutout.mask)
        assert (data[mask] == 0).all()


def test_select_magnitude():
    table = QTable({"mag": [20.0, 23.0, 23.5, np.nan] * u.ABmag})
    assert select_magnitude(table).tolist() == [True, True, False, False]
    assert select_magnitude(table, 22 * u.ABmag).tolist() == [True, False, False, False]
    plain = Table({"m_f160w": [20.0, 24.0]})
    assert select_magnitude(plain, column="m_f160w").tolist() == [True, False]
    with pytest.raises(ValueError, match="no column 'mag'; its columns are"):
        select_magnitude(plain)
    # Flux densities are AB magnitudes in other units: 3631 Jy is m = 0.
    fluxes = QTable({"mag": [3631.0, 1e-6] * u.Jy})
    assert select_magnitude(fluxes, max_mag=1.0).tolist() == [True, False]
    with pytest.raises(u.UnitsError, match=r"in arcsec, which cannot be converted to mag\(AB\)"):
        select_magnitude(QTable({"mag": [1.0, 2.0] * u.arcsec}))


def test_parameter_ranges_feed_the_simulation():
    from astromorphnet.simulation import draw_parameters

    real = QTable({"mag": [19.0, 22.5, np.nan] * u.ABmag, "r_eff": [2.0, 8.0, 4.0] * u.pix,
                   "sersic_n": [0.8, 4.5, 2.0], "ellipticity": [0.1, 0.6, 0.3]})
    ranges = parameter_ranges(real)
    assert ranges == {"mag": (19.0, 22.5), "r_eff": (2.0, 8.0), "sersic_n": (0.8, 4.5),
                      "ellipticity": (0.1, 0.6)}
    assert all(type(v) is float for pair in ranges.values() for v in pair)
    drawn = draw_parameters(50, ranges, random_state=0)
    assert match_parameter_ranges(drawn, real).all()
    with pytest.raises(ValueError, match="holds no finite value"):
        parameter_ranges(QTable({"mag": [np.nan] * u.ABmag}), columns="mag")
    with pytest.raises(u.UnitsError, match="convert sizes to pixels"):
        parameter_ranges(QTable({"r_eff": [0.3] * u.arcsec}), columns=["r_eff"])
    with pytest.raises(ValueError, match="columns is empty"):
        parameter_ranges(real, columns=())


def test_match_parameter_ranges():
    sims = QTable({"mag": [17.0, 20.0, 22.0, 26.0] * u.ABmag, "r_eff": [1.0, 3.0, 5.0, 3.0],
                   "sersic_n": [1.0, 2.0, np.nan, 3.0], "ellipticity": [0.2, 0.3, 0.3, 0.3]})
    real = Table({"mag": [18.0, 24.0], "r_eff": [0.5, 6.0], "sersic_n": [0.5, 4.0],
                  "ellipticity": [0.0, 0.8]})
    assert match_parameter_ranges(sims, real).tolist() == [False, True, False, False]
    ranges = {"mag": (16.0, 27.0) * u.ABmag, "r_eff": (1.3, 50.2)}
    assert match_parameter_ranges(sims, ranges, columns=("mag", "r_eff")).tolist() == [
        False, True, True, True]
    with pytest.raises(ValueError, match="reference ranges have no entry 'sersic_n'"):
        match_parameter_ranges(sims, ranges)
    with pytest.raises(ValueError, match=r"reference range 'mag' \(27.0, 16.0\) is empty"):
        match_parameter_ranges(sims, {"mag": (27.0, 16.0)}, columns="mag")
    with pytest.raises(ValueError, match="must be a \\(low, high\\) pair"):
        match_parameter_ranges(sims, {"mag": 20.0}, columns="mag")
    with pytest.raises(ValueError, match="reference has no column 'pa'"):
        match_parameter_ranges(QTable({"pa": [1.0] * u.deg}), real, columns="pa")
    # Other columns compare in the table's unit.
    assert match_parameter_ranges(QTable({"pa": [10.0, 100.0] * u.deg}),
                                  QTable({"pa": [0.0, 1.0] * u.rad}), columns="pa").tolist() == [
        True, False]


# -- neighbour masks of ready-made cutouts --------------------------------------
def _stamp(neighbours, seed=0):
    """A galaxy at the centre of a 48x48 noise stamp plus Gaussian neighbours at (x, y)."""
    yy, xx = np.mgrid[:48, :48]
    image = 30 * np.exp(-((xx - 23.5) ** 2 + (yy - 23.5) ** 2) / 18)
    for x0, y0 in neighbours:
        image = image + 30 * np.exp(-((xx - x0) ** 2 + (yy - y0) ** 2) / 6)
    return image + np.random.default_rng(seed).normal(0, NOISE, image.shape)


def test_mask_neighbours_masks_neighbours_only():
    stack = np.array([_stamp([(6, 40)]), _stamp([]), _stamp([(32, 28)])])
    stack[0, 0, 0] = np.nan
    masked = mask_neighbours(stack)
    assert isinstance(masked, np.ma.MaskedArray) and masked.shape == stack.shape
    assert masked.mask[0, 40, 6] and masked.mask[0, 0, 0]  # neighbour, NaN pixel
    assert not masked.mask[0, 20:28, 20:28].any()  # the central galaxy is never masked
    assert masked.mask[1].sum() == 0  # an isolated galaxy: nothing to mask
    assert masked.mask[2, 28, 32]  # a blended neighbour, split by deblending
    assert not mask_neighbours(stack[2:], deblend=False).mask[0, 28, 32]  # one segment
    assert not masked.mask[2, 23, 23]


def test_mask_neighbours_keeps_the_form_and_what_is_known():
    image = _stamp([(6, 40)])
    old = np.zeros(image.shape, bool)
    old[0, :] = True
    wcs = make_wcs(image.shape)
    ccd = CCDData(image, unit="electron/s", wcs=wcs, mask=old, meta={"MAGZERO": 25.9},
                  uncertainty=StdDevUncertainty(np.full(image.shape, NOISE)))
    out_ccd, out_plain, out_array = mask_neighbours([ccd, NDData(image), image])
    assert isinstance(out_ccd, CCDData) and out_ccd.wcs is wcs and out_ccd.unit == ccd.unit
    assert out_ccd.meta["MAGZERO"] == 25.9 and out_ccd.data is ccd.data
    assert out_ccd.mask[0].all() and out_ccd.mask[40, 6] and not ccd.mask[40, 6]
    assert type(out_plain) is NDData and out_plain.mask[40, 6]
    assert isinstance(out_array, np.ma.MaskedArray) and out_array.mask[40, 6]
    # The estimators read the neighbour mask like any other.
    assert as_stamps([out_ccd]).read(0, 1, image.shape).mask[0, 40, 6]
    kept = mask_neighbours(np.ma.MaskedArray(image[np.newaxis], mask=old[np.newaxis]))
    assert kept.mask[0, 0].all()


@pytest.mark.parametrize("cutouts, kwargs, match", [
    (np.zeros((48, 48)), {}, r"stacked \(n, ny, nx\); got an array of shape \(48, 48\)"),
    ([NDData(np.zeros((2, 8, 8)))], {}, r"each NDData cutout must be 2-D"),
    (np.zeros((1, 8, 8)), {"threshold": 0}, "threshold must be positive"),
    (np.zeros((1, 8, 8)), {"dilate": -1}, "dilate must be a non-negative int"),
])
def test_mask_neighbours_errors(cutouts, kwargs, match):
    with pytest.raises(ValueError, match=match):
        mask_neighbours(cutouts, **kwargs)
