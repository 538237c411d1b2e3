"""metrics.morphology_metrics: the Euclid Morphology Challenge metrics per magnitude bin."""

import astropy.units as u
import numpy as np
import pytest
from astropy.table import QTable

from astromorphnet.metrics import OUTLIER_THRESHOLDS, morphology_errors, morphology_metrics

TARGETS = ("mag", "r_eff", "sersic_n", "ellipticity")


def make_truth(rng, n=2000):
    return np.column_stack([rng.uniform(18, 24, n), rng.uniform(2, 20, n),
                            rng.uniform(0.5, 6, n), rng.uniform(0, 0.8, n)])


def as_table(values):
    return QTable({"mag": values[:, 0] * u.ABmag, "r_eff": values[:, 1] * u.pix,
                   "sersic_n": values[:, 2], "ellipticity": values[:, 3]})


def test_error_definitions():
    np.testing.assert_allclose(morphology_errors([20.0], [20.3], "mag"), [0.3])
    np.testing.assert_allclose(morphology_errors([4.0], [5.0], "r_eff"), [0.25])
    np.testing.assert_allclose(morphology_errors([2.0], [20.0], "sersic_n"), [1.0])
    np.testing.assert_allclose(morphology_errors([0.5], [0.4], "ellipticity"), [-0.1])


def test_known_biases(rng):
    truth = make_truth(rng)
    pred = truth * [1.0, 1.1, 10 ** 0.2, 1.0] + [0.25, 0.0, 0.0, -0.05]
    table = morphology_metrics(truth, pred, mag_bins=[18, 20, 22, 24])
    assert len(table) == 3 and table["n"].sum() == len(truth)
    assert table["mag_bias"].unit == u.mag and table["mag_low"].unit == u.ABmag
    np.testing.assert_allclose(table["mag_bias"].value, 0.25)
    np.testing.assert_allclose(table["r_eff_bias"], 0.1)
    np.testing.assert_allclose(table["sersic_n_bias"], 0.2)
    np.testing.assert_allclose(table["ellipticity_bias"], -0.05)
    for target in TARGETS:  # constant errors: no spread, no outliers (all below 0.5)
        np.testing.assert_allclose(np.asarray(table[f"{target}_dispersion"]), 0.0, atol=1e-12)
        assert np.all(table[f"{target}_outlier_fraction"] == 0.0)


def test_gaussian_dispersion_is_sigma68(rng):
    truth = make_truth(rng, n=20000)
    pred = truth.copy()
    pred[:, 0] += rng.normal(0.0, 0.2, len(truth))  # mag error: N(0, 0.2)
    pred[:, 2] *= 10 ** rng.normal(0.05, 0.1, len(truth))  # log10 n error: N(0.05, 0.1)
    table = morphology_metrics(truth, pred, mag_bins=None)
    assert table["mag_bin"].tolist() == ["all"] and np.isnan(table["mag_low"][0].value)
    assert table["mag_dispersion"][0].to_value(u.mag) == pytest.approx(0.2, rel=0.03)
    assert table["sersic_n_dispersion"][0] == pytest.approx(0.1, rel=0.03)
    assert table["sersic_n_bias"][0] == pytest.approx(0.05, abs=0.003)
    # P(|N(0, 0.2)| > 0.5) = 1.24 %: outliers count |error| beyond the threshold
    assert table["mag_outlier_fraction"][0] == pytest.approx(0.0124, abs=0.003)


def test_planted_outliers_and_thresholds(rng):
    truth = make_truth(rng, n=1000)
    pred = truth.copy()
    pred[:100, 1] *= 3.0  # relative error +2
    pred[100:150, 3] += 0.3
    table = morphology_metrics(truth, pred, mag_bins=1)
    assert table["r_eff_outlier_fraction"][0] == pytest.approx(0.1)
    assert table["ellipticity_outlier_fraction"][0] == 0.0  # 0.3 < default 0.5
    assert table["r_eff_bias"][0] == 0.0  # the median ignores 10 % outliers
    assert table.meta["outlier_thresholds"] == OUTLIER_THRESHOLDS
    tight = morphology_metrics(truth, pred, mag_bins=1,
                               outlier_threshold={"ellipticity": 0.2})
    assert tight["ellipticity_outlier_fraction"][0] == pytest.approx(0.05)
    assert tight.meta["outlier_thresholds"]["r_eff"] == 0.5
    everywhere = morphology_metrics(truth, pred, mag_bins=1, outlier_threshold=0.2)
    assert everywhere.meta["outlier_thresholds"] == dict.fromkeys(TARGETS, 0.2)


def test_bins_on_true_magnitude(rng):
    truth = make_truth(rng, n=300)
    pred = truth.copy()
    pred[:, 0] = 30.0  # predicted magnitudes must not move galaxies between bins
    table = morphology_metrics(truth, pred, mag_bins=[18, 21, 24])
    expected = [np.sum(truth[:, 0] < 21), np.sum(truth[:, 0] >= 21)]
    assert table["n"].tolist() == expected
    assert table["mag_bin"].tolist() == ["[18.00, 21.00)", "[21.00, 24.00]"]
    np.testing.assert_allclose(table["mag_high"].value, [21, 24])
    # the last edge is included, values outside all bins are left out
    edges = morphology_metrics([[19.0], [20.0], [25.0]], [[19.0], [20.0], [25.0]],
                               targets="mag", mag_bins=[19, 20] * u.ABmag)
    assert edges["n"].tolist() == [2]
    default = morphology_metrics(truth, pred)
    assert len(default) == 5 and default["n"].sum() == len(truth)


def test_empty_bin_gives_nan(rng):
    truth = make_truth(rng, n=200)
    table = morphology_metrics(truth, truth, mag_bins=[10, 12, 25])
    assert table["n"].tolist() == [0, 200]
    for target in TARGETS:
        for metric in ("bias", "dispersion", "outlier_fraction"):
            value = np.asarray(table[f"{target}_{metric}"])
            assert np.isnan(value[0]) and value[1] == 0.0


def test_without_true_magnitude_one_bin(rng):
    truth = make_truth(rng, n=50)
    table = morphology_metrics(truth[:, 1:], truth[:, 1:] * 1.2,
                               targets=("r_eff", "sersic_n", "ellipticity"))
    assert table["mag_bin"].tolist() == ["all"] and table["n"].tolist() == [50]
    assert "mag_bias" not in table.colnames
    # a truth table still bins on its mag column when mag is not scored
    binned = morphology_metrics(as_table(truth), as_table(truth), targets=("r_eff",),
                                mag_bins=2)
    assert len(binned) == 2 and binned.colnames[-3:] == [
        "r_eff_bias", "r_eff_dispersion", "r_eff_outlier_fraction"]


def test_tables_and_dict_of_models(rng):
    truth = make_truth(rng, n=100)
    table = morphology_metrics(as_table(truth),
                               {"cnn": as_table(truth * [1, 1.1, 1, 1]), "perfect": truth},
                               mag_bins=[18, 21, 24])
    assert table["model"].tolist() == ["cnn", "cnn", "perfect", "perfect"]
    assert table.colnames[:5] == ["model", "mag_bin", "mag_low", "mag_high", "n"]
    np.testing.assert_allclose(table["r_eff_bias"], [0.1, 0.1, 0.0, 0.0], atol=1e-12)
    # default targets: the columns the tables share
    partial = morphology_metrics(as_table(truth), as_table(truth)["mag", "sersic_n"])
    assert [c for c in partial.colnames if c.endswith("_bias")] == ["mag_bias",
                                                                   "sersic_n_bias"]


def test_errors(rng):
    truth = make_truth(rng, n=20)
    with pytest.raises(ValueError, match=r"y_pred have shape \(10, 4\); the labels have "
                                         r"\(20, 4\)"):
        morphology_metrics(truth, truth[:10])
    with pytest.raises(ValueError, match=r"predictions of 'x' have shape \(5, 3\)"):
        morphology_metrics(truth[:, :3], {"x": truth[:5, :3]}, targets=TARGETS[:3])
    with pytest.raises(ValueError, match=r"y_true: y must have shape \(n, 3\)"):
        morphology_metrics(truth, truth[:, :3], targets=TARGETS[:3])
    with pytest.raises(ValueError, match="targets must be distinct names"):
        morphology_metrics(truth, truth, targets=("mag", "size"))
    bad = truth.copy()
    bad[[3, 7], 1] = np.nan
    with pytest.raises(ValueError, match=r"y_true contain NaN in 2 row\(s\) \(first: \[3, 7\]\)"):
        morphology_metrics(bad, truth)
    with pytest.raises(ValueError, match=r"predictions of 'cnn' contain NaN"):
        morphology_metrics(truth, {"cnn": bad})
    with pytest.raises(ValueError, match="empty dict"):
        morphology_metrics(truth, {})
    negative = truth.copy()
    negative[0, 2] = -1.0
    with pytest.raises(ValueError, match=r"model 'cnn': predicted sersic_n must be > 0"):
        morphology_metrics(truth, {"cnn": negative})
    with pytest.raises(ValueError, match=r"y_true: sersic_n labels must lie in \[0.1, 10\]"):
        morphology_metrics(negative, truth)
    with pytest.raises(ValueError, match=r"outlier_threshold has unknown parameter\(s\) "
                                         r"\['size'\]"):
        morphology_metrics(truth, truth, outlier_threshold={"size": 1.0})
    with pytest.raises(ValueError, match="outlier thresholds must be >= 0"):
        morphology_metrics(truth, truth, outlier_threshold=-1)
    with pytest.raises(ValueError, match="mag_bins must be a number of bins"):
        morphology_metrics(truth, truth, mag_bins=[24, 20, 18])
    with pytest.raises(ValueError, match=r"y_true: label table lacks column\(s\) "
                                         r"\['sersic_n', 'ellipticity'\]"):
        morphology_metrics(as_table(truth)["mag", "r_eff"], truth, targets=TARGETS)
