"""The GalSim simulation helpers: ranges, conventions, reproducibility."""

import astropy.units as u
import numpy as np
import pytest

from astromorphnet.simulation import THESIS_RANGES, draw_parameters, simulate_galaxies


def test_draw_parameters_ranges_and_units():
    truth = draw_parameters(500, {"sersic_n": (1.0, 2.0)}, random_state=0)
    assert truth["mag"].unit == u.ABmag and truth["r_eff"].unit == u.pix
    assert truth["sersic_n"].min() >= 1.0 and truth["sersic_n"].max() <= 2.0
    low, high = THESIS_RANGES["r_eff"]
    assert truth["r_eff"].value.min() >= low and truth["r_eff"].value.max() <= high
    assert (truth["ellipticity"] <= 0.95).all()


@pytest.mark.parametrize("ranges, match", [
    ({"sersic_n": (0.1, 4)}, "outside GalSim's valid 0.3-6.2"),
    ({"sersic_n": (1, 7)}, "outside GalSim's valid 0.3-6.2"),
    ({"r_eff": (-1, 4)}, "must be positive"),
    ({"ellipticity": (0, 1.5)}, "must lie in \\[0, 1\\)"),
    ({"mag": (25, 20)}, "is empty"),
    ({"colour": (0, 1)}, "unknown parameter range"),
])
def test_out_of_range_requests(ranges, match):
    with pytest.raises(ValueError, match=match):
        draw_parameters(3, ranges)


def test_flux_and_semi_major_radius_conventions():
    # Noiseless, bright, well-resolved: check total flux and the half-light
    # ellipse along the major axis, measured independently with photutils.
    from photutils.aperture import EllipticalAperture, aperture_photometry

    ranges = {"mag": (18, 18), "r_eff": (6, 6), "sersic_n": (1, 1), "ellipticity": (0.5, 0.5)}
    images, truth = simulate_galaxies(1, stamp_size=96, ranges=ranges, noise_sigma=0.0,
                                      psf_fwhm=0.01, random_state=3)
    image = images[0].astype(float)
    flux = 10 ** (-0.4 * (18 - truth.meta["zeropoint"]))
    assert image.sum() == pytest.approx(flux, rel=0.01)
    centre = (47.5 + truth["dx"][0].value, 47.5 + truth["dy"][0].value)
    theta = np.deg2rad(truth["pa"][0].value)
    half = aperture_photometry(image, EllipticalAperture(centre, 6.0, 3.0, theta=theta))
    assert half["aperture_sum"][0] == pytest.approx(flux / 2, rel=0.02)


def test_simulation_is_seeded():
    first = simulate_galaxies(3, stamp_size=16, ranges={"sersic_n": (0.5, 1)}, random_state=5)
    second = simulate_galaxies(3, stamp_size=16, ranges={"sersic_n": (0.5, 1)}, random_state=5)
    np.testing.assert_array_equal(first[0], second[0])
    with pytest.raises(ValueError, match="n must be a positive number"):
        simulate_galaxies(0)
