"""Simulation realism: bulge+disk galaxies, artefacts on measured correlated noise."""

import astropy.units as u
import numpy as np
import pytest
from astropy.table import QTable

from astromorphnet.simulation import (CorrelatedNoise, PSFKernel, Realism, SurveyConfig,
                                      render_sersic, simulate_galaxies)

from .conftest import FAST_RANGES

galsim = pytest.importorskip("galsim")

ZEROPOINT = 25.94


def _survey(noise=None, size=96):
    return SurveyConfig("test", pixel_scale=0.06, zeropoint=ZEROPOINT, stamp_size=size,
                        psf=galsim.Moffat(beta=3.0, fwhm=0.18), noise=noise)


def test_bulge_keeps_the_total_flux_and_is_recorded():
    truth = QTable({"mag": [18.0, 18.0] * u.ABmag, "r_eff": [4.0, 6.0] * u.pix,
                    "sersic_n": [1.0, 0.8], "ellipticity": [0.5, 0.1], "pa": [30.0, 0.0] * u.deg})
    survey = _survey()
    realism = Realism(bulge_fraction=(0.2, 0.6))
    with_bulge, out = simulate_galaxies(truth=truth, survey=survey, realism=realism,
                                        random_state=0)
    flux = 10 ** (-0.4 * (18.0 - ZEROPOINT))
    np.testing.assert_allclose(with_bulge.sum(axis=(1, 2)), flux, rtol=0.01)
    assert ((0.2 <= out["bulge_fraction"]) & (out["bulge_fraction"] <= 0.6)).all()
    assert out["bulge_r_eff"].unit == u.pix
    np.testing.assert_allclose(out["bulge_r_eff"].value, [1.2, 1.8])  # 0.3 r_eff
    np.testing.assert_allclose(out["bulge_ellipticity"], [0.2, 0.1])  # b/a >= 0.8
    assert out.meta["realism"]["bulge_fraction"] == [0.2, 0.6]
    # The labels describe the disk; mag is the total: the image is a disk of
    # (1 - B/T) of the light plus a concentric n = 4 bulge of B/T.
    fraction = out["bulge_fraction"][0]
    bulge_r_eff, bulge_e = out["bulge_r_eff"][0].value, float(out["bulge_ellipticity"][0])
    kernel = PSFKernel(survey.psf_objects()[0], survey.pixel_scale)
    disk = render_sersic((96, 96), flux * (1 - fraction), 4.0, 1.0, 0.5, 30.0, kernel)
    bulge = render_sersic((96, 96), flux * fraction, bulge_r_eff, 4.0, 1 - bulge_e, 30.0, kernel)
    np.testing.assert_allclose(with_bulge[0], disk + bulge, rtol=1e-5, atol=1e-7 * flux)
    # Without a bulge, no bulge columns.
    no_bulge, plain = simulate_galaxies(truth=truth, survey=survey, realism=Realism(),
                                        random_state=0)
    assert "bulge_fraction" not in plain.colnames
    assert with_bulge[0].max() > no_bulge[0].max()  # the bulge concentrates the light


def test_artefacts_on_measured_correlated_noise():
    cosmos = CorrelatedNoise("cosmos")  # no variance given: GalSim's measured one
    assert cosmos.variance == pytest.approx(galsim.getCOSMOSNoise().getVariance())
    realism = Realism(sky_gradient=2.0, cosmic_rays=2.0)
    images, truth = simulate_galaxies(4, _survey(cosmos, 32), ranges=FAST_RANGES,
                                      realism=realism, random_state=0)
    assert np.isfinite(images).all() and truth["n_cosmic_rays"].sum() > 0
    blank_sky = np.random.default_rng(0).normal(0.0, 0.01, (64, 64))
    measured = CorrelatedNoise(blank_sky)
    assert measured.variance == pytest.approx(blank_sky.var(), rel=0.05)
    images, _ = simulate_galaxies(4, _survey(measured, 32), ranges=FAST_RANGES,
                                  realism=realism, random_state=0)
    assert np.isfinite(images).all()
