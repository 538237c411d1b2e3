"""astromorphnet.measure on a dask.distributed LocalCluster: same catalog as one process."""

import numpy as np
import pytest
from astropy.io import fits
from astropy.wcs import WCS

from astromorphnet import SersicCNNRegressor, measure, simulate_galaxies
from astromorphnet.simulation import SurveyConfig

distributed = pytest.importorskip("distributed")

OPTIONS = dict(size=32, box_size=32, tile_size=160)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """A fitted tiny model and two FITS mosaics in electron/s."""
    X, truth = simulate_galaxies(32, "CANDELS_F160W", stamp_size=32, random_state=0)
    model = SersicCNNRegressor("light", max_epochs=1, zeropoint=truth.meta["zeropoint"],
                               random_state=0).fit(X, truth)
    survey = SurveyConfig.from_preset("CANDELS_F160W", stamp_size=32, noise=None)
    stamps, _ = simulate_galaxies(9, survey, random_state=1,
                                  ranges={"mag": (19, 21), "r_eff": (2, 4)})
    folder = tmp_path_factory.mktemp("mosaics")
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    wcs.wcs.crval = [150.1, 2.2]
    wcs.wcs.cdelt = [-0.06 / 3600, 0.06 / 3600]
    paths = []
    for seed in (0, 1):
        rng = np.random.default_rng(seed)
        image = rng.normal(0.0, 0.008, (256, 256)).astype(np.float32)
        grid = np.arange(3) * 80 + 48
        for stamp, x, y in zip(stamps, *(a.ravel() + rng.integers(-8, 8, 9)
                                         for a in np.meshgrid(grid, grid))):
            image[y - 16:y + 16, x - 16:x + 16] += stamp
        header = wcs.to_header()
        header.update(BUNIT="ELECTRONS/S", MAGZERO=25.94)
        paths.append(folder / f"mosaic{seed}.fits")
        fits.PrimaryHDU(image, header).writeto(paths[-1])
    return model, paths


def test_local_cluster_gives_the_single_process_catalog(inputs, tmp_path):
    model, paths = inputs
    expected = measure(paths, model, **OPTIONS)
    assert len(expected) == 18
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        result = measure(paths, model, client=client, **OPTIONS)
        # The model went once per worker, as a plugin, and left with the run.
        plugins = client.run(lambda dask_worker: sorted(dask_worker.plugins))
        assert not any("astromorphnet" in name for names in plugins.values() for name in names)
        saved = tmp_path / "model.pkl"
        model.save(saved)
        by_address = measure(paths[0], saved, client=cluster.scheduler_address, **OPTIONS)
    first = expected[expected["image"] == str(paths[0])]
    first.remove_column("image")
    for other, reference in ((result, expected), (by_address, first)):
        assert other.colnames == reference.colnames
        assert list(other["tile"]) == list(reference["tile"])
        np.testing.assert_array_equal(other["flag"], reference["flag"])
        for name in ("x", "y", "ra", "dec", "mag", "r_eff", "sersic_n", "ellipticity",
                     "mag_err"):
            np.testing.assert_allclose(other[name].value, reference[name].value, rtol=1e-6,
                                       err_msg=name)
    assert list(result["image"]) == list(expected["image"])
    assert by_address.meta["model_path"] == str(saved)


def test_client_of_wrong_type(inputs):
    model, paths = inputs
    with pytest.raises(TypeError, match="client must be a dask.distributed Client"):
        measure(paths[0], model, client=4, **OPTIONS)


def test_predict_reads_a_dask_array_stack_batch_by_batch(inputs):
    """A dask.array of cutouts is read lazily, batch by batch, with the in-memory result."""
    da = pytest.importorskip("dask.array")
    model = inputs[0]
    X, _ = simulate_galaxies(12, "CANDELS_F160W", stamp_size=32, random_state=2)
    lazy = da.from_array(np.asarray(X), chunks=(5, 32, 32))
    expected, result = model.predict(X), model.predict(lazy)
    assert result.colnames == expected.colnames
    for name in ("mag", "r_eff", "sersic_n", "ellipticity", "mag_err"):
        np.testing.assert_allclose(result[name].value, expected[name].value, rtol=1e-5)
