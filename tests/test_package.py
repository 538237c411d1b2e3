"""Package-level promises: light import, public names, the demo command."""

import subprocess
import sys

import astropy.units as u
import numpy as np
import pytest

import astromorphnet
from astromorphnet.__main__ import main


def test_import_is_light():
    code = ("import sys, astromorphnet\n"
            "from astromorphnet import SersicCNNRegressor\n"
            "SersicCNNRegressor(architecture='light')\n"
            "heavy = [m for m in ('tensorflow', 'keras', 'galsim') if m in sys.modules]\n"
            "assert not heavy, heavy\n")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_public_names():
    assert astromorphnet.__version__
    for name in astromorphnet.__all__:
        assert getattr(astromorphnet, name) is not None
    with pytest.raises(AttributeError, match="has no attribute 'nope'"):
        astromorphnet.nope


def test_demo_command(tmp_path, capsys):
    assert main(["demo", "--n-source", "48", "--n-target", "40", "--stamp-size", "32",
                 "--max-epochs", "1", "--fine-tune-epochs", "1", "--dann-max-epochs", "1",
                 "--output-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "R² on the real-like TARGET test set (16 galaxies)" in out
    assert "R² on the simulated SOURCE test set" in out
    from astropy.table import QTable

    r2 = QTable.read(tmp_path / "r2_target.ecsv")
    assert r2["model"].tolist() == ["sim-only", "transfer learning", "supervised DANN",
                                    "semi-supervised DANN"]
    assert np.isfinite([r2[c] for c in ("mag", "r_eff", "sersic_n", "ellipticity")]).all()
    catalog = QTable.read(tmp_path / "catalog_semi-supervised_DANN.ecsv")
    assert len(catalog) == 16 and "true_sersic_n" in catalog.colnames
    assert catalog["mag"].unit == u.ABmag and catalog["r_eff_arcsec"].unit == u.arcsec
    metrics = QTable.read(tmp_path / "morphology_metrics_target.ecsv")
    assert "r_eff_outlier_fraction" in metrics.colnames
    assert (tmp_path / "predicted_vs_true.png").stat().st_size > 10_000


def test_demo_rejects_unknown_settings():
    from astromorphnet.demo import run_demo

    with pytest.raises(ValueError, match="scale must be one of"):
        run_demo("huge")
    with pytest.raises(ValueError, match=r"unknown demo settings \['n_galaxies'\]"):
        run_demo(n_galaxies=10)


def test_demo_adversarial_settings(tmp_path, monkeypatch):
    from astromorphnet.demo import run_demo
    from astromorphnet.estimators import AdversarialDARegressor

    seen = []
    fit = AdversarialDARegressor.fit

    def spy(self, X, y=None, sample_domain=None, sample_weight=None):
        seen.append(((sample_domain > 0).sum(), (sample_domain < 0).sum(), self.max_epochs,
                     self.patience))
        return fit(self, X, y, sample_domain=sample_domain, sample_weight=sample_weight)

    monkeypatch.setattr(AdversarialDARegressor, "fit", spy)
    run_demo(n_source=48, n_target=40, stamp_size=32, max_epochs=1, fine_tune_epochs=1,
             dann_n_source=20, dann_max_epochs=2, dann_patience=7, plots=False, verbose=0,
             output_dir=tmp_path)
    # 48 sources less 20 % for testing, cut to 20; 40 targets less 40 % for testing.
    assert seen == [(20, 24, 2, 7)] * 2
