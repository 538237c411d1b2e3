"""Fitter labels for fine-tuning in one call (issue 10, lever f): `label_with_fit`."""

import re
import warnings

import astropy.units as u
import numpy as np
import pytest
from astropy.utils.exceptions import AstropyUserWarning

from astromorphnet import SersicCNNRegressor, TransferLearningRegressor
from astromorphnet.fitting import _labels, fit_sersic, label_with_fit
from astromorphnet.simulation import SurveyConfig, simulate_galaxies

pytest.importorskip("galsim")

SIZE = 32
RANGES = {"mag": (20, 22), "r_eff": (2, 4), "sersic_n": (0.8, 3), "ellipticity": (0.1, 0.6)}
FITTED = ("mag", "r_eff", "r_eff_arcsec", "sersic_n", "ellipticity", "mag_err", "r_eff_err",
          "sersic_n_err", "ellipticity_err", "pa", "pa_err", "x_offset", "x_offset_err",
          "y_offset", "y_offset_err")


@pytest.fixture(scope="module")
def cutouts():
    """Three bright simulated galaxies, a blank cutout and one of pure noise; the survey."""
    survey = SurveyConfig.from_preset("CANDELS_F160W", stamp_size=SIZE)
    images, truth = simulate_galaxies(5, survey, ranges=RANGES, random_state=0)
    images[3] = 0.0
    images[4] = np.random.default_rng(0).normal(0.0, np.sqrt(survey.noise.variance), (SIZE, SIZE))
    return images, truth, survey


@pytest.fixture(scope="module")
def labels(cutouts):
    images, _, survey = cutouts
    with pytest.warns(AstropyUserWarning, match=r"3 of 5 fits pass the cuts .*fewer than 50"):
        return label_with_fit(images, survey)


@pytest.fixture(scope="module")
def raw(cutouts):
    images, _, survey = cutouts
    return fit_sersic(images, survey)


@pytest.fixture
def refit(cutouts, raw, monkeypatch):
    """label_with_fit on ``cutouts`` with the fits done once: only the cuts run again."""
    images, _, survey = cutouts
    monkeypatch.setattr(_labels, "fit_sersic", lambda *args, **kwargs: raw.copy())

    def run(**cuts):
        return label_with_fit(images, survey, **cuts)

    run.raw = raw
    return run


def test_garbage_cutouts_get_nan_rows_and_good_fits_keep_theirs(cutouts, labels):
    images, truth, _ = cutouts
    assert len(labels) == len(images)
    assert labels["selected"].tolist() == [True, True, True, False, False]
    for name in FITTED:
        assert np.isnan(getattr(labels[name], "value", labels[name])[3:]).all(), name
    assert labels["mag"].unit == u.ABmag and labels["r_eff"].unit == u.pix
    # The diagnostics say why: nothing to fit (blank), no detection (noise).
    assert labels["fit_flag"][3] & _labels.FitFlag.BAD_DATA
    assert labels["fit_flag"][4] & _labels.FitFlag.LOW_SN
    assert np.isfinite(labels["sn"][4]) and np.isfinite(labels["chi2_nu"][4])
    assert np.abs(labels["mag"][:3].value - truth["mag"][:3].value).max() < 0.1
    assert np.abs(labels["r_eff"][:3].value - truth["r_eff"][:3].value).max() < 0.3
    assert labels.meta["selection"] == "fit_flag == 0 and flag == 0"
    assert (labels.meta["n_fitted"], labels.meta["n_selected"]) == (5, 3)
    assert labels.meta["estimator"] == "fit_sersic"


def test_chi2_cut_is_honoured(refit):
    chi2 = np.asarray(refit.raw["chi2_nu"])
    cut = float(np.median(chi2[:3]))  # rejects one of the three good fits
    failing = int((~(chi2 <= cut)).sum())  # a NaN chi2_nu (the blank cutout) fails too
    with pytest.warns(AstropyUserWarning, match=rf"chi2_nu > {re.escape(str(cut))} {failing},"):
        labels = refit(max_chi2=cut)
    assert labels["selected"].tolist() == list((chi2 <= cut) & (np.arange(5) < 3))
    assert labels["selected"].sum() == 2
    assert labels.meta["max_chi2"] == cut
    assert labels.meta["selection"] == f"fit_flag == 0 and flag == 0 and chi2_nu <= {cut}"


def test_relative_error_cut_follows_its_definition(refit):
    raw = refit.raw
    # Documented: flux (0.4 ln10 mag_err), r_eff, sersic_n and the axis ratio b/a.
    worst = np.max([0.4 * np.log(10) * raw["mag_err"].value,
                    raw["r_eff_err"].value / raw["r_eff"].value,
                    raw["sersic_n_err"] / raw["sersic_n"],
                    raw["ellipticity_err"] / (1 - raw["ellipticity"])], axis=0)[:3]
    cut = float(np.sort(worst)[1])  # between the smallest and the largest
    with pytest.warns(AstropyUserWarning, match="relative error"):
        labels = refit(max_rel_error=cut)
    assert labels["selected"].tolist()[:3] == list(worst <= cut)
    assert labels["selected"].sum() == 2 and labels.meta["max_rel_error"] == cut


def test_no_warning_when_enough_fits_pass(refit, monkeypatch):
    monkeypatch.setattr(_labels, "MIN_LABELS", 3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert refit()["selected"].sum() == 3  # 2 of 5 rejected: under half


def test_warns_when_most_fits_fail_even_with_enough_labels(refit, monkeypatch):
    monkeypatch.setattr(_labels, "MIN_LABELS", 1)
    cut = float(np.min(refit.raw["chi2_nu"][:3]))
    with pytest.warns(AstropyUserWarning, match=r"1 of 5 fits pass") as record:
        refit(max_chi2=cut)
    assert "fewer than" not in str(record[0].message)


@pytest.mark.parametrize("cuts, error, match", [
    ({"max_chi2": 0}, ValueError, r"max_chi2 must be a positive, finite number or None; got 0"),
    ({"max_chi2": np.inf}, ValueError, r"max_chi2 must be .*; got inf"),
    ({"max_rel_error": -0.1}, ValueError, r"max_rel_error must be .*; got -0.1"),
    ({"max_rel_error": "0.2"}, TypeError, r"max_rel_error must be a positive .*; got str '0.2'"),
    ({"max_chi2": True}, TypeError, r"max_chi2 must be a positive number or None; got bool"),
])
def test_bad_cuts_are_refused_before_fitting(cutouts, cuts, error, match):
    images, _, survey = cutouts
    with pytest.raises(error, match=match):
        label_with_fit(images, survey, **cuts)


def test_one_call_fine_tuning_skips_rejected_rows(cutouts, labels, refit):
    images, _, survey = cutouts
    sims, truth = simulate_galaxies(16, survey, ranges=RANGES, random_state=1)
    pretrained = SersicCNNRegressor(architecture="light", max_epochs=1, batch_size=8,
                                    zeropoint=survey.zeropoint, random_state=0).fit(sims, truth)
    tuned = TransferLearningRegressor(pretrained, max_epochs=1, validation_fraction=0.0,
                                      zeropoint=survey.zeropoint, random_state=0)
    catalog = tuned.fit(images, labels).predict(images)
    assert len(catalog) == len(images) and tuned.n_epochs_ == 1
    assert np.isfinite(catalog["mag"].value[:3]).all()
    # Every row rejected: nothing left to learn from, said plainly.
    with pytest.warns(AstropyUserWarning, match="0 of 5 fits pass"):
        none = refit(max_rel_error=1e-9)
    with pytest.raises(ValueError, match="no labelled target rows to fine-tune on"):
        TransferLearningRegressor(pretrained, max_epochs=1, random_state=0,
                                  zeropoint=survey.zeropoint).fit(images, none)


def test_cli_label_runs_label_with_fit(cutouts, refit, tmp_path):
    from astropy.io import fits
    from astropy.table import QTable

    from astromorphnet.__main__ import main

    images, _, survey = cutouts
    fits.PrimaryHDU(images, fits.Header({"MAGZERO": survey.zeropoint})).writeto(
        tmp_path / "cube.fits")
    output = str(tmp_path / "labels.ecsv")
    with pytest.warns(AstropyUserWarning, match="0 of 5 fits pass"):
        assert main(["label", str(tmp_path / "cube.fits"), "-o", output, "--survey",
                     "CANDELS_F160W", "--max-rel-error", "1e-9", "--keep-flagged", "-q"]) == 0
    labels = QTable.read(output)
    assert list(labels["index"]) == list(range(5)) and not labels["selected"].any()
    assert np.isnan(labels["mag"].value).all() and labels["mag"].unit == u.ABmag
    assert labels.meta["selection"] == ("fit_flag == 0 and flag == 0 and relative errors "
                                        "<= 1e-09")
    assert labels.meta["max_rel_error"] == 1e-9 and labels.meta["n_selected"] == 0
