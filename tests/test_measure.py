"""astromorphnet.measure: images in, one Sérsic catalog out (single process)."""

import subprocess
import sys

import astropy.units as u
import numpy as np
import pytest
from astropy import log
from astropy.coordinates import SkyCoord
from astropy.io import fits
from astropy.nddata import CCDData, NDData
from astropy.wcs import WCS

from astromorphnet import SersicCNNRegressor, measure, simulate_galaxies
from astromorphnet.catalog import SersicFlag
from astromorphnet.pipeline._tiles import in_core, tile_grid
from astromorphnet.simulation import SurveyConfig

ZEROPOINT = 25.94
PIXEL_SCALE = 0.06
SHAPE = (256, 256)
OPTIONS = dict(size=32, box_size=32)  # 64-pixel boxes each hold a bright galaxy here


@pytest.fixture(scope="module")
def model():
    X, truth = simulate_galaxies(32, "CANDELS_F160W", stamp_size=32, random_state=0)
    return SersicCNNRegressor("light", max_epochs=1, zeropoint=truth.meta["zeropoint"],
                              random_state=0).fit(X, truth)


@pytest.fixture(scope="module")
def scene():
    """A 256² mosaic in electron/s: 9 known galaxies on a jittered grid, a TAN WCS."""
    survey = SurveyConfig.from_preset("CANDELS_F160W", stamp_size=32, noise=None)
    stamps, truth = simulate_galaxies(9, survey, random_state=1,
                                      ranges={"mag": (19, 21), "r_eff": (2, 4)})
    rng = np.random.default_rng(0)
    image = rng.normal(0.0, 0.008, SHAPE).astype(np.float32)
    grid = np.arange(3) * 80 + 48
    xs, ys = (a.ravel() + rng.integers(-8, 8, 9) for a in np.meshgrid(grid, grid))
    for stamp, x, y in zip(stamps, xs, ys):
        image[y - 16:y + 16, x - 16:x + 16] += stamp
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    wcs.wcs.crval = [53.1, -27.8]
    wcs.wcs.crpix = [SHAPE[1] / 2 + 0.5, SHAPE[0] / 2 + 0.5]
    wcs.wcs.cdelt = [-PIXEL_SCALE / 3600, PIXEL_SCALE / 3600]
    wcs.wcs.cunit = ["deg", "deg"]
    # The centre of an even-sized stamp lies at (size - 1) / 2 + (dx, dy).
    x_true = xs - 0.5 + truth["dx"].value
    y_true = ys - 0.5 + truth["dy"].value
    return image, wcs, x_true, y_true


def _write(path, image, wcs, **keywords):
    header = wcs.to_header()
    header.update(keywords)
    fits.PrimaryHDU(image, header).writeto(path)
    return path


@pytest.fixture(scope="module")
def mosaic_path(scene, tmp_path_factory):
    image, wcs, _, _ = scene
    return _write(tmp_path_factory.mktemp("mosaic") / "mosaic.fits", image, wcs,
                  BUNIT="ELECTRONS/S", MAGZERO=ZEROPOINT)


@pytest.fixture(scope="module")
def catalog(mosaic_path, model):
    return measure(mosaic_path, model, **OPTIONS)


def _match(catalog, x, y):
    """Row of the catalog nearest to each (x, y), and the distance."""
    distance = np.hypot(catalog["x"].value[:, None] - x, catalog["y"].value[:, None] - y)
    return distance.argmin(axis=0), distance.min(axis=0)


def test_recovers_galaxies_and_sky_positions(catalog, scene, mosaic_path):
    _, wcs, x_true, y_true = scene
    assert len(catalog) == len(x_true)
    rows, distance = _match(catalog, x_true, y_true)
    assert sorted(rows) == list(range(len(catalog)))
    assert distance.max() < 1.0
    true_sky = wcs.pixel_to_world(x_true, y_true)
    sky = catalog["sky_centroid"][rows]
    assert isinstance(sky, SkyCoord)
    assert sky.separation(true_sky).max() < PIXEL_SCALE * u.arcsec
    assert u.allclose(catalog["ra"], catalog["sky_centroid"].ra)
    assert u.allclose(catalog["dec"], catalog["sky_centroid"].dec)
    assert list(catalog["label"]) == list(range(1, 10))
    assert catalog.colnames[:6] == ["label", "x", "y", "ra", "dec", "sky_centroid"]
    assert catalog["mag"].unit == u.ABmag and catalog["r_eff"].unit == u.pix
    assert catalog["ra"].unit == u.deg
    assert {"mag_err", "r_eff_lo", "ellipticity_hi", "flag"} <= set(catalog.colnames)
    assert "image" not in catalog.colnames and "tile" not in catalog.colnames
    assert "model_path" not in catalog.meta  # an in-memory estimator has no file
    assert catalog.meta["estimator"] == "SersicCNNRegressor"
    assert catalog.meta["images"] == [str(mosaic_path)]
    assert catalog.meta["zeropoints"] == [ZEROPOINT]
    assert "astromorphnet_version" in catalog.meta and "model_id" in catalog.meta


def test_tiles_keep_each_galaxy_once(catalog, mosaic_path, model):
    with log.log_to_list() as messages:
        tiled = measure(mosaic_path, model, tile_size=160, **OPTIONS)
    assert len(messages) == 4 and all("tile" in m.message for m in messages)
    assert len(tiled) == len(catalog)
    rows, distance = _match(tiled, catalog["x"].value, catalog["y"].value)
    assert sorted(rows) == list(range(len(tiled)))
    assert distance.max() < 0.05
    assert set(tiled["tile"]) == {0, 1, 2, 3}
    assert tiled.meta["tile_size"] == [160, 160] and tiled.meta["tile_overlap"] == 64
    np.testing.assert_allclose(tiled["mag"][rows].value, catalog["mag"].value, atol=0.05)


def test_tile_cores_partition_the_image():
    tiles = tile_grid((300, 200), (120, 90), 40)
    rng = np.random.default_rng(0)
    x, y = rng.uniform(-0.5, 199.5, 2000), rng.uniform(-0.5, 299.5, 2000)
    owners = np.array([in_core(tile, x, y) for tile in tiles])
    assert (owners.sum(axis=0) == 1).all()
    for tile, owned in zip(tiles, owners):
        rows, cols = tile.slices
        assert rows.stop - rows.start == 120 and cols.stop - cols.start == 90
        # An owned centroid lies at least overlap / 2 inside the tile (or at the edge).
        inner_x = np.minimum(x[owned] - (cols.start - 0.5) if cols.start else np.inf,
                             (cols.stop - 0.5) - x[owned] if cols.stop < 200 else np.inf)
        assert (inner_x >= 20).all()


def test_jobs_carry_only_their_tile(scene, model, mosaic_path):
    import pickle

    from astromorphnet.pipeline._measure import _jobs, _open_image

    image, wcs, _, _ = scene
    maps = dict(error=None, weight=np.ones(SHAPE), mask=None)
    for source in (NDData(image, wcs=wcs), mosaic_path):
        opened = _open_image(source, 0, dict(maps), ZEROPOINT)
        jobs = list(_jobs(opened, ((160, 160), 64), model))
        sizes = [len(pickle.dumps(job)) for job in jobs]
        # An in-memory tile travels with its pixels (and weights); a file's, as its slices.
        assert max(sizes) < (160 * 160 * (4 + 8) + 20_000 if source is not mosaic_path
                             else 160 * 160 * 8 + 20_000)
        assert all(job.data.array is None for job in jobs) == (source is mosaic_path)


def test_electron_per_second_header_equals_unitless_with_zeropoint(catalog, scene, model):
    image, wcs, _, _ = scene
    unitless = measure(NDData(image, wcs=wcs), model, zeropoint=ZEROPOINT, **OPTIONS)
    np.testing.assert_allclose(unitless["mag"].value, catalog["mag"].value, rtol=0, atol=1e-9)
    # The same galaxies in a 10× smaller unit: the pixels are rescaled to the model's.
    scaled = measure(CCDData(image * 10, unit=u.electron / u.s, wcs=wcs,
                             meta={"PHOTZP": ZEROPOINT + 2.5}), model, **OPTIONS)
    np.testing.assert_allclose(scaled["mag"].value, catalog["mag"].value, atol=1e-4)
    np.testing.assert_allclose(scaled["r_eff"].value, catalog["r_eff"].value, rtol=1e-4)


def test_model_with_a_pixel_unit_gets_the_image_converted(scene, model):
    image, wcs, _, _ = scene
    # The same network, as if fitted on pixels in electron/s of zeropoint 25.94.
    in_counts = object.__new__(type(model))
    in_counts.__dict__.update(model.__dict__, unit_=u.electron / u.s)
    reference = measure(CCDData(image, unit=u.electron / u.s, wcs=wcs), in_counts, **OPTIONS)
    per_minute = measure(CCDData(image * 60, unit=u.electron / u.min, wcs=wcs), in_counts,
                         **OPTIONS)
    np.testing.assert_allclose(per_minute["mag"].value, reference["mag"].value, atol=1e-4)
    # nJy and electron/s do not convert: the zeropoints relate them (nJy's is 31.4).
    to_njy = 10 ** (-0.4 * (ZEROPOINT - (1 * u.nJy).to_value(u.ABmag)))
    in_njy = measure(CCDData(image * to_njy, unit=u.nJy, wcs=wcs), in_counts, **OPTIONS)
    np.testing.assert_allclose(in_njy["mag"].value, reference["mag"].value, atol=1e-4)
    np.testing.assert_allclose(in_njy["r_eff"].value, reference["r_eff"].value, rtol=1e-4)
    assert in_njy.meta["zeropoints"][0] == pytest.approx(31.4, abs=1e-3)


def test_default_model_and_names_come_from_the_shipped_models(scene, model, monkeypatch):
    import types

    import astromorphnet.pipeline._measure as measure_module

    asked = []
    shipped = types.ModuleType("astromorphnet.pretrained")
    shipped.load_pretrained = lambda name: asked.append(name) or model
    monkeypatch.setitem(sys.modules, "astromorphnet.pretrained", shipped)
    image, wcs, _, _ = scene
    mosaic = NDData(image, wcs=wcs, meta={"MAGZERO": ZEROPOINT})
    assert measure(mosaic, **OPTIONS).meta["model_name"] == measure_module.DEFAULT_MODEL
    assert measure(mosaic, "other-survey", **OPTIONS).meta["model_name"] == "other-survey"
    assert asked == [measure_module.DEFAULT_MODEL, "other-survey"]


def test_a_shipped_model_passed_as_an_estimator_keeps_its_name(scene, model):
    import copy

    image, wcs, _, _ = scene
    mosaic = NDData(image, wcs=wcs, meta={"MAGZERO": ZEROPOINT})
    assert "model_name" not in measure(mosaic, model, **OPTIONS).meta
    shipped = copy.copy(model)
    shipped.pretrained_name_ = "candels-f160w"  # as load_pretrained leaves it
    assert measure(mosaic, shipped, **OPTIONS).meta["model_name"] == "candels-f160w"


def test_hst_photflam_gives_the_zeropoint(scene, model, tmp_path):
    image, wcs, _, _ = scene
    # PHOTFLAM/PHOTPLAM of WFC3/IR F160W: AB zeropoint 25.946.
    path = _write(tmp_path / "hst.fits", image, wcs, BUNIT="ELECTRONS/S",
                  PHOTFLAM=1.9275e-20, PHOTPLAM=15369.176)
    result = measure(path, model, **OPTIONS)
    assert result.meta["zeropoints"][0] == pytest.approx(25.946, abs=2e-3)


def test_missing_zeropoint_says_how_to_give_one(scene, model, tmp_path):
    image, wcs, _, _ = scene
    path = _write(tmp_path / "nozp.fits", image, wcs, BUNIT="ELECTRONS/S")
    with pytest.raises(ValueError, match=r"zeropoint=\.\.\., or put MAGZERO"):
        measure(path, model, **OPTIONS)


def test_several_images_and_hdus(mosaic_path, scene, model, catalog, tmp_path):
    image, wcs, _, _ = scene
    second = _write(tmp_path / "second.fits", image[:, :140], wcs, MAGZERO=ZEROPOINT)
    both = measure([mosaic_path, second], model, **OPTIONS)
    assert both.colnames[0] == "image"
    assert set(both["image"]) == {str(mosaic_path), str(second)}
    first = both[both["image"] == str(mosaic_path)]
    np.testing.assert_allclose(first["x"].value, catalog["x"].value)
    assert list(both[both["image"] == str(second)]["label"])[0] == 1
    # The galaxy 8 pixels from the cut edge: its cutout is padded, and flagged.
    cut = both[both["image"] == str(second)]
    edge = np.argmax(cut["x"].value)
    assert cut["x"][edge].value > 125 and cut["flag"][edge] & SersicFlag.PADDED

    with fits.open(mosaic_path) as hdul:
        from_hdus = measure([hdul, hdul[0]], model, **OPTIONS)
    assert list(set(from_hdus["image"])) in ([0, 1], [1, 0])
    np.testing.assert_allclose(from_hdus["mag"][:9].value, catalog["mag"].value)


def test_weight_map_and_batches(mosaic_path, scene, model, catalog, tmp_path):
    image = scene[0]
    weight = tmp_path / "weight.fits"
    fits.PrimaryHDU(np.full(image.shape, 1 / 0.008**2, np.float32)).writeto(weight)
    weighted = measure(mosaic_path, model, weight=weight, batch_size=2, **OPTIONS)
    assert len(weighted) == len(catalog)
    model_array = SersicCNNRegressor(**model.get_params())
    model_array.__dict__.update(model.__dict__)
    model_array.set_output(predict="array")
    again = measure(mosaic_path, model_array, batch_size=4, **OPTIONS)
    np.testing.assert_allclose(again["mag"].value, catalog["mag"].value, atol=1e-6)


def test_model_from_file(mosaic_path, model, catalog, tmp_path):
    path = tmp_path / "model.pkl"
    model.save(path)
    result = measure(mosaic_path, path, **OPTIONS)
    assert result.meta["model_path"] == str(path)
    np.testing.assert_allclose(result["mag"].value, catalog["mag"].value, atol=1e-6)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        measure(mosaic_path, tmp_path / "missing.pkl", **OPTIONS)


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(images=42), TypeError, "must be a FITS path, an NDData"),
    (dict(images=np.zeros((64, 64))), TypeError, "wrap an array in astropy.nddata.NDData"),
    (dict(images=[]), ValueError, "images is empty"),
    (dict(images="no_such.fits"), FileNotFoundError, "no such file 'no_such.fits'"),
    (dict(images=NDData(np.zeros((2, 8, 8)))), ValueError, "must be a 2-D image"),
    (dict(images=[NDData(np.zeros((64, 64)))] * 2, error=[None]), ValueError,
     "error has 1 entries for 2 images"),
    (dict(images=[NDData(np.zeros((64, 64)))] * 2, mask=np.zeros((64, 64), bool)), TypeError,
     "mask must be a list of 2"),
    (dict(images=NDData(np.zeros((64, 64))), weight=np.ones((32, 32))), ValueError,
     r"weight of images\[0\] has shape \(32, 32\)"),
    (dict(images=NDData(np.zeros((64, 64))), tile_overlap=40), ValueError,
     "tile_overlap is given without tile_size"),
    (dict(images=NDData(np.zeros((64, 64))), tile_size=100), ValueError,
     "larger than twice the overlap"),
    (dict(images=NDData(np.zeros((64, 64))), tile_size=200, tile_overlap=8), ValueError,
     "tile_overlap must be an int >= 32"),
    (dict(images=NDData(np.zeros((64, 64))), batch_size=0), ValueError,
     "batch_size must be an int >= 1"),
    (dict(images=NDData(np.zeros((64, 64))), progress="yes"), TypeError, "progress must be"),
    (dict(images=NDData(np.zeros((64, 64))), zeropoint="25"), TypeError,
     "zeropoint must be a number"),
    (dict(images=NDData(np.zeros((64, 64))), thresold=2.0), TypeError,
     r"unknown option\(s\) 'thresold'; its detection options are .*threshold, "),
    (dict(images=NDData(np.zeros((64, 64))), n_pixels=0), ValueError,
     "n_pixels must be a positive int"),
    (dict(images=NDData(np.zeros((64, 64))), subtract_background="no"), TypeError,
     "subtract_background must be"),
])
def test_invalid_input(model, kwargs, error, match):
    kwargs = {"model": model, "size": 32, **kwargs}
    with pytest.raises(error, match=match):
        measure(**kwargs)


@pytest.mark.parametrize("form", ["float", "scaled", "compressed", "gzip"])
def test_tile_sections_read_from_fits_equal_the_image(form, tmp_path):
    from astromorphnet.pipeline._measure import _fits_plane, read_section

    image = np.random.default_rng(0).normal(100.0, 10.0, (90, 70)).astype(np.float32)
    path = tmp_path / (f"{form}.fits" + (".gz" if form == "gzip" else ""))
    if form == "compressed":
        fits.HDUList([fits.PrimaryHDU(), fits.CompImageHDU(image)]).writeto(path)
    else:
        hdu = fits.PrimaryHDU(image)
        if form == "scaled":
            hdu.scale("int16", bscale=0.01, bzero=100.0)
        hdu.writeto(path)
    with fits.open(path) as hdul:
        expected = hdul[1 if form == "compressed" else 0].data[10:60, 5:47]
    section, _ = _fits_plane(str(path), "image")
    read = read_section(section._replace(slices=(slice(10, 60), slice(5, 47))))
    np.testing.assert_array_equal(read, expected)


def test_invalid_model(mosaic_path):
    with pytest.raises(TypeError, match="model must be a fitted astromorphnet estimator"):
        measure(mosaic_path, model=3)
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        measure(mosaic_path, model=SersicCNNRegressor())


def test_no_galaxy_warns_and_returns_empty(model):
    from photutils.utils import NoDetectionsWarning

    noise = np.random.default_rng(0).normal(0.0, 1.0, (64, 64))
    with pytest.warns(NoDetectionsWarning, match="no galaxy detected"):
        result = measure(NDData(noise), model, zeropoint=ZEROPOINT, size=32, threshold=50.0)
    assert len(result) == 0 and result.colnames == ["label", "x", "y"]


def test_import_pipeline_does_not_import_dask():
    code = ("import sys, astromorphnet.pipeline; "
            "assert not {'dask', 'distributed'} & set(sys.modules), sorted(sys.modules)")
    subprocess.run([sys.executable, "-c", code], check=True)
