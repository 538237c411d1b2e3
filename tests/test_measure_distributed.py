"""astromorphnet.measure on a dask.distributed LocalCluster: same catalog as one process."""

import numpy as np
import pytest
from astropy.io import fits
from astropy.wcs import WCS

from astromorphnet import SersicCNNRegressor, load_pretrained, measure, simulate_galaxies
from astromorphnet.simulation import SurveyConfig

distributed = pytest.importorskip("distributed")
from astromorphnet.pipeline._distributed import MAX_MODELS  # noqa: E402

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
        # The model went once to each worker, which loaded it at most once and keeps it.
        loaded = client.run(_loaded_models)
        assert {len(models) for models in loaded.values()} <= {0, 1} and any(loaded.values())
        saved = tmp_path / "model.pkl"
        model.save(saved)
        by_address = measure(paths[0], saved, client=cluster.scheduler_address, **OPTIONS)
        after = client.run(_loaded_models)
        for address, models in loaded.items():  # the same file: not loaded again
            assert after[address].items() >= models.items()
        measure(paths[0], load_pretrained(), client=client, **OPTIONS)
        assert all(len(models) <= MAX_MODELS for models in client.run(_loaded_models).values())
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


def _loaded_models():
    """On a worker: the identity of each estimator it holds, by model key."""
    from astromorphnet.pipeline._distributed import _MODELS

    return {key: id(estimator) for key, estimator in _MODELS.items()}


def test_workers_keep_the_most_recently_used_models(monkeypatch, tmp_path):
    from collections import OrderedDict
    from types import SimpleNamespace

    import astromorphnet.estimators
    from astromorphnet.pipeline import _distributed, _measure

    worker = SimpleNamespace(state=SimpleNamespace(nthreads=1), local_directory=str(tmp_path))
    monkeypatch.setattr(_distributed, "get_worker", lambda: worker)
    monkeypatch.setattr(_distributed, "_limit_threads", lambda n: None)
    monkeypatch.setattr(astromorphnet.estimators, "load", lambda path: open(path, "rb").read())
    monkeypatch.setattr(_measure, "_catalog_output", lambda estimator: estimator)
    monkeypatch.setattr(_distributed, "_MODELS", OrderedDict())
    assert _distributed._estimator("a", b"model a") == b"model a"  # loaded from its bytes
    _distributed._estimator("b", b"model b")
    assert _distributed._estimator("a", b"other bytes") == b"model a"  # cached, not reloaded
    _distributed._estimator("c", b"model c")
    assert list(_distributed._MODELS) == ["a", "c"] and MAX_MODELS == 2  # b was the oldest


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
