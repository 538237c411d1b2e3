"""The shipped reference models: registry, offline loading, sensible measurements."""

import json
import socket

import numpy as np
import pytest

from astromorphnet import list_pretrained, load_pretrained
from astromorphnet.pretrained import DEFAULT_MODEL, _registry


def test_list_pretrained_describes_every_model_in_one_line():
    models = list_pretrained()
    assert DEFAULT_MODEL in models
    assert set(models) == set(_registry._REGISTRY)
    for description in models.values():
        assert description and "\n" not in description


@pytest.mark.parametrize("name", ["no-such-model", "CANDELS-F160W", None, 3])
def test_unknown_name_lists_the_known_ones(name):
    with pytest.raises(ValueError, match=rf"no shipped model named {name!r}; known: "
                                         r"'candels-f160w'"):
        load_pretrained(name)


def test_missing_model_file_says_reinstall(monkeypatch):
    entry = {**_registry._REGISTRY[DEFAULT_MODEL], "file": "not_shipped.pkl"}
    monkeypatch.setitem(_registry._REGISTRY, "broken", entry)
    with pytest.raises(FileNotFoundError, match=r"'broken' .*missing.*reinstall"):
        load_pretrained("broken")


def _metrics(name):
    """The metrics file that ``benchmarks/train_pretrained.py`` wrote next to the model."""
    from importlib import resources

    file = _registry._REGISTRY[name]["file"].rsplit(".", 1)[0] + ".json"
    return json.loads(resources.files("astromorphnet.pretrained").joinpath("data", file)
                      .read_text())


@pytest.fixture(scope="module")
def shipped():
    """The default model, loaded with every network connection refused."""
    def refuse(*args, **kwargs):
        raise OSError("network access during load_pretrained")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(socket.socket, "connect", refuse)
        patch.setattr(socket, "create_connection", refuse)
        return load_pretrained()


def test_shipped_model_is_the_one_its_metrics_describe(shipped):
    metrics = _metrics(DEFAULT_MODEL)
    entry = _registry._REGISTRY[DEFAULT_MODEL]
    assert shipped.pretrained_name_ == DEFAULT_MODEL == metrics["name"]
    assert shipped.model_id_ == metrics["model_id"]
    assert shipped.input_shape_ == (entry["stamp_size"],) * 2
    assert shipped.likelihood_ == "laplace"
    assert hasattr(shipped, "calibration_")
    assert shipped.verbose == 0  # a user's predict shows no training progress


def test_shipped_model_measures_candels_galaxies(shipped):
    from astromorphnet.simulation import simulate_galaxies

    images, truth = simulate_galaxies(
        8, "CANDELS_F160W", stamp_size=64, random_state=1,
        ranges={"mag": (18.0, 21.0), "r_eff": (2.0, 8.0), "sersic_n": (0.5, 4.0),
                "ellipticity": (0.0, 0.6)})
    catalog = shipped.predict(images)
    assert catalog.meta["model_id"] == shipped.model_id_
    np.testing.assert_array_less(np.abs((catalog["mag"] - truth["mag"]).value), 1.0)
    for column in ("mag", "r_eff", "sersic_n", "ellipticity"):
        error = catalog[f"{column}_err"]
        assert np.all(np.isfinite(error)) and np.all(error.value > 0), column
        assert np.all(catalog[f"{column}_lo"] <= catalog[column]), column
        assert np.all(catalog[column] <= catalog[f"{column}_hi"]), column
