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
    assert main(["demo", "--n-galaxies", "40", "--stamp-size", "32", "--max-epochs", "1",
                 "--output-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "R² on the simulated test set" in out and "sim-only (on sims)" in out
    from astropy.table import QTable

    catalog = QTable.read(tmp_path / "catalog.ecsv")
    assert len(catalog) == 8
    assert catalog["mag"].unit == u.ABmag and catalog["r_eff_arcsec"].unit == u.arcsec
    r2 = QTable.read(tmp_path / "r2.ecsv")
    assert np.isfinite([r2[c][0] for c in ("mag", "r_eff", "sersic_n", "ellipticity")]).all()
