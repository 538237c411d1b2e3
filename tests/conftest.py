"""Shared fixtures: a tiny simulated survey and a quickly trained network."""

import numpy as np
import pytest

from astromorphnet import SersicCNNRegressor, stack_domains
from astromorphnet.simulation import simulate_galaxies, simulate_real_like

#: Cheap-to-draw parameter ranges (low Sérsic n renders in ~1 ms with GalSim).
FAST_RANGES = {"mag": (17.0, 23.0), "r_eff": (1.5, 5.0), "sersic_n": (0.5, 2.5)}
ZEROPOINT = 25.94


@pytest.fixture(scope="session")
def survey():
    """96 noisy 32×32 galaxies and their truth table."""
    return simulate_galaxies(96, stamp_size=32, ranges=FAST_RANGES, random_state=42)


def make_regressor(**params):
    """A light, few-epoch regressor for tests."""
    defaults = dict(architecture="light", max_epochs=3, batch_size=16, learning_rate=1e-3,
                    zeropoint=ZEROPOINT, random_state=0)
    return SersicCNNRegressor(**{**defaults, **params})


@pytest.fixture(scope="session")
def fitted(survey):
    """A regressor fitted on the first 80 galaxies of ``survey``."""
    images, truth = survey
    return make_regressor().fit(images[:80], truth[:80])


@pytest.fixture(scope="session")
def domains(survey):
    """48 labelled source rows and 32 real-like target rows (labels kept).

    ``(X, y, sample_domain, real, real_truth)`` for the domain-adaptation tests.
    """
    images, truth = survey
    real, real_truth = simulate_real_like(32, stamp_size=32, random_state=3,
                                          ranges={**FAST_RANGES, "ellipticity": (0.1, 0.6)})
    X, y, domain = stack_domains(images[:48], truth[:48], real, real_truth)
    return X, y, domain, real, real_truth


@pytest.fixture
def rng():
    return np.random.default_rng(7)
