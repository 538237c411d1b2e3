"""Uncertainty metrics and the calibration-curve plot, on Gaussian predictions of known coverage."""

import io

import astropy.units as u
import numpy as np
import pytest
from astropy.table import QTable
from scipy import stats

from astromorphnet.metrics import (
    calibration_curve,
    coverage_table,
    error_prediction,
    morphology_metrics,
)

TARGETS = ("mag", "r_eff", "sersic_n", "ellipticity")
SIGMA = np.array([0.1, 0.4, 0.2, 0.03])
#: Their names in the plot's legend.
NAMES = ("magnitude", "effective radius", "Sérsic index", "ellipticity")
N = 3000


class Gaussian:
    """Stand-in for ``predict_distribution``: independent Gaussians per galaxy and parameter."""

    def __init__(self, median, sigma, targets=TARGETS):
        self.targets = targets
        self.median = np.asarray(median, dtype=np.float64)
        self.sigma = np.broadcast_to(sigma, self.median.shape)
        self.calls = []

    @property
    def error(self):
        return self.sigma

    def interval(self, coverage):
        self.calls.append(coverage)
        return stats.norm.interval(coverage, self.median, self.sigma)


def binomial_bounds(p, n):
    """Range holding the observed fraction of ``n`` trials with probability 1 - 1e-4.

    About ±3.9σ: a test compares up to 84 fractions (4 parameters × 21
    levels), so a 99.9 % range would fail by chance on ~8 % of seeds.
    """
    low, high = stats.binom.interval(1 - 1e-4, n, p)
    return low / n, high / n


def within_binomial(observed, expected, n):
    low, high = binomial_bounds(np.asarray(expected), n)
    return np.all((observed >= low) & (observed <= high))


def overconfident_coverage(level, factor):
    """True coverage of a Gaussian interval at ``level`` whose σ is ``factor`` × the true σ."""
    return 2 * stats.norm.cdf(factor * stats.norm.ppf(0.5 + level / 2)) - 1


@pytest.fixture(scope="module")
def toy():
    """Truths inside the physical ranges; point estimates scattered by SIGMA around them."""
    rng = np.random.default_rng(12)
    truth = np.column_stack([rng.uniform(18, 24, N), rng.uniform(2, 20, N),
                             rng.uniform(0.5, 6, N), rng.uniform(0, 0.8, N)])
    # Per-galaxy scales, so that a metric mixing galaxies up would show.
    sigma = SIGMA * rng.uniform(0.5, 1.5, (N, 1))
    median = truth + rng.normal(0, 1, truth.shape) * sigma
    return truth, median, sigma


def test_coverage_table_calibrated(toy):
    truth, median, sigma = toy
    table = coverage_table(Gaussian(median, sigma), truth)
    assert table.colnames == ["parameter", "coverage_68", "coverage_95", "width_68",
                              "width_95", "unit"]
    assert table["parameter"].tolist() == list(TARGETS)
    assert table["unit"].tolist() == ["mag", "pix", "", ""]
    assert table.meta["n"] == N and table.meta["levels"] == [0.68, 0.95]
    assert within_binomial(table["coverage_68"], 0.68, N)
    assert within_binomial(table["coverage_95"], 0.95, N)
    z = stats.norm.ppf([0.84, 0.975])
    np.testing.assert_allclose(table["width_68"], 2 * z[0] * sigma.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(table["width_95"], 2 * z[1] * sigma.mean(axis=0), rtol=1e-12)


def test_coverage_table_detects_overconfidence(toy):
    """Errors half the true scatter: coverage falls to the known Gaussian value, 38 % at 68 %."""
    truth, median, sigma = toy
    table = coverage_table(Gaussian(median, sigma / 2), truth, levels=[0.6827])
    assert table.colnames[:2] == ["parameter", "coverage_68_27"]
    expected = overconfident_coverage(0.6827, 0.5)
    assert expected == pytest.approx(0.383, abs=1e-3)
    assert within_binomial(table["coverage_68_27"], expected, N)


def test_coverage_table_table_labels_subset_targets(toy):
    """Labels as a QTable with units; a distribution over two parameters in its own order."""
    truth, median, sigma = toy
    labels = QTable({"mag": truth[:, 0] * u.ABmag, "r_eff": truth[:, 1] * u.pix,
                     "sersic_n": truth[:, 2], "ellipticity": truth[:, 3]})
    dist = Gaussian(median[:, [2, 0]], sigma[:, [2, 0]], targets=("sersic_n", "mag"))
    table = coverage_table(dist, labels, levels=(0.5,))
    assert table["parameter"].tolist() == ["sersic_n", "mag"]
    assert table["unit"].tolist() == ["", "mag"]
    assert within_binomial(table["coverage_50"], 0.5, N)


def test_calibration_curve(toy):
    truth, median, sigma = toy
    dist = Gaussian(median, sigma)
    curve = calibration_curve(dist, truth)
    nominal = np.array(curve["nominal"])
    assert len(nominal) == 21 and np.all(np.diff(nominal) > 0)
    assert {0.05, 0.5, 0.6827, 0.95, 0.9545} <= set(nominal.round(4))
    assert curve.colnames == ["nominal", *TARGETS] and curve.meta["n"] == N
    assert dist.calls == nominal.tolist()  # one interval() per level, nothing else
    for target in TARGETS:
        assert within_binomial(np.array(curve[target]), nominal, N)

    over = calibration_curve(Gaussian(median, sigma * 0.7), truth, levels=[0.9, 0.3])
    assert np.array(over["nominal"]).tolist() == [0.3, 0.9]
    expected = overconfident_coverage(np.array([0.3, 0.9]), 0.7)
    for target in TARGETS:
        assert within_binomial(np.array(over[target]), expected, N)


def test_error_prediction_bins_match_morphology_metrics(toy):
    truth, median, sigma = toy
    catalog = QTable({"mag": median[:, 0] * u.ABmag, "mag_err": sigma[:, 0] * u.mag,
                      "r_eff": median[:, 1] * u.pix, "r_eff_err": sigma[:, 1] * u.pix,
                      "sersic_n": median[:, 2], "sersic_n_err": sigma[:, 2],
                      "ellipticity": median[:, 3]})  # no ellipticity_err: not scored
    table = error_prediction(catalog, truth[:, :3], mag_bins=4)
    assert table.colnames == ["mag_bin", "mag_low", "mag_high", "n", "mag_within_1sigma",
                              "r_eff_within_1sigma", "sersic_n_within_1sigma"]
    reference = morphology_metrics(truth[:, :2], median[:, :2], mag_bins=4,
                                   targets=("mag", "r_eff"))
    assert table["mag_bin"].tolist() == reference["mag_bin"].tolist()
    assert table["n"].tolist() == reference["n"].tolist()
    assert table["mag_low"].unit == u.ABmag
    assert table.meta["ideal"] == pytest.approx(stats.norm.cdf(1) - stats.norm.cdf(-1))
    for target in ("mag", "r_eff", "sersic_n"):
        for fraction, n in zip(table[f"{target}_within_1sigma"], table["n"]):
            assert within_binomial(fraction, 0.6827, n)

    # A distribution gives the same fractions as the catalog made from it.
    dist = Gaussian(median, sigma)
    from_dist = error_prediction(dist, truth[:, :3], targets=("mag", "r_eff", "sersic_n"),
                                 mag_bins=4)
    for target in ("mag", "r_eff", "sersic_n"):
        np.testing.assert_array_equal(from_dist[f"{target}_within_1sigma"],
                                      table[f"{target}_within_1sigma"])


def test_error_prediction_flags_small_errors_per_bin(toy):
    """Errors 2× too small for faint galaxies only: only the faint bin drops to 38 %."""
    truth, median, sigma = toy
    faint = truth[:, 0] >= 21
    stated = sigma / np.where(faint, 2.0, 1.0)[:, np.newaxis]
    labels = QTable({"mag": truth[:, 0] * u.ABmag, "ellipticity": truth[:, 3]})
    table = error_prediction(Gaussian(median, stated), labels, targets=("ellipticity",),
                             mag_bins=[18, 21, 24])
    bright, dim = table["ellipticity_within_1sigma"]
    assert within_binomial(bright, 0.6827, table["n"][0])
    assert within_binomial(dim, overconfident_coverage(0.6827, 0.5), table["n"][1])


def test_error_prediction_single_bin_and_empty_bin(toy):
    truth, median, sigma = toy
    dist = Gaussian(median, sigma)
    single = error_prediction(dist, truth, mag_bins=None)
    assert single["mag_bin"].tolist() == ["all"] and single["n"].tolist() == [N]
    assert np.isnan(single["mag_low"].value).all()
    empty = error_prediction(dist, truth, mag_bins=[10, 12, 30])
    assert empty["n"].tolist() == [0, N]
    assert np.isnan(empty["mag_within_1sigma"][0])


@pytest.mark.parametrize("levels, match", [
    ((0.68, 1.0), r"levels must lie in \(0, 1\) .*got \[1.0\]"),
    ([68], r"a coverage such as 0.68, not 68\); got \[68.0\]"),
    ([0.0, np.nan], r"got \[0.0, nan\]"),
    ([0.5, 0.5], r"levels must be distinct; got \[0.5, 0.5\]"),
    ([], r"levels must be a sequence of coverages"),
    ("high", r"levels must be coverages in \(0, 1\); got 'high'"),
])
def test_levels_validated(toy, levels, match):
    truth, median, sigma = toy
    with pytest.raises(ValueError, match=match):
        coverage_table(Gaussian(median, sigma), truth, levels=levels)
    with pytest.raises(ValueError, match=match):
        calibration_curve(Gaussian(median, sigma), truth, levels=levels)


def test_distribution_and_labels_validated(toy):
    truth, median, sigma = toy
    dist = Gaussian(median, sigma)
    with pytest.raises(ValueError, match=r"distribution.interval\(0.68\) returned lo of shape "
                                         r"\(3000, 4\); y_true has shape \(10, 4\)"):
        coverage_table(dist, truth[:10])
    with pytest.raises(ValueError, match=r"y_true: label table lacks column\(s\) \['r_eff'"):
        calibration_curve(dist, QTable({"mag": truth[:, 0]}))
    with pytest.raises(ValueError, match=r"y_true: .*sersic_n labels must lie in"):
        coverage_table(dist, truth * [1, 1, -1, 1])
    with pytest.raises(TypeError, match=r"with attributes \['targets', 'interval'\]; "
                                        r"ndarray lacks \['targets', 'interval'\]"):
        coverage_table(median, truth)
    nan = Gaussian(np.where(np.arange(N)[:, None] == 3, np.nan, median), sigma)
    with pytest.raises(ValueError, match=r"distribution.interval\(0.95\)'s lo contain NaN "
                                         r"in 1 row\(s\) \(first: \[3\]\)"):
        coverage_table(nan, truth, levels=[0.95])

    class Swapped(Gaussian):
        def interval(self, coverage):
            return super().interval(coverage)[::-1]

    with pytest.raises(ValueError, match=r"returned lo > hi for 12000 value\(s\)"):
        coverage_table(Swapped(median, sigma), truth)


def test_error_prediction_validated(toy):
    truth, median, sigma = toy
    catalog = QTable({"mag": median[:, 0] * u.ABmag, "mag_err": sigma[:, 0] * u.mag})
    with pytest.raises(ValueError, match=r"catalog has no parameter with its 1σ error column"):
        error_prediction(QTable({"mag": median[:, 0]}), truth)
    with pytest.raises(ValueError, match=r"catalog lacks error column\(s\) \['r_eff_err'\]"):
        error_prediction(catalog, truth[:, :2], targets=("mag", "r_eff"))
    with pytest.raises(ValueError, match=r"predictions have shape \(3000, 1\); y_true has "
                                         r"\(5, 1\)"):
        error_prediction(catalog, truth[:5, :1])
    with pytest.raises(u.UnitsError, match=r"error column mag_err has unit .*AB.*not "
                                           r"convertible to Unit\(\"mag\"\)"):
        error_prediction(QTable({"mag": catalog["mag"], "mag_err": catalog["mag"]}),
                         truth[:, :1])
    negative = QTable({"mag": catalog["mag"], "mag_err": -catalog["mag_err"]})
    with pytest.raises(ValueError, match=r"1σ errors must be >= 0; 3000 value\(s\) are not"):
        error_prediction(negative, truth[:, :1])
    with pytest.raises(ValueError, match=r"the distribution has no parameter\(s\) \['r_eff'\]"):
        error_prediction(Gaussian(median[:, :1], sigma[:, :1], ("mag",)), truth[:, :2],
                         targets=("mag", "r_eff"))
    with pytest.raises(TypeError, match=r"catalog must be a table with <param> and "
                                        r"<param>_err columns .*got ndarray"):
        error_prediction(median, truth)
    with pytest.raises(ValueError, match=r"mag_bins must be a number of bins"):
        error_prediction(catalog, truth[:, :1], mag_bins=[24, 18])


@pytest.fixture(scope="module")
def curves(toy):
    """Calibration curves of over-confident and of calibrated errors; skips without matplotlib."""
    pytest.importorskip("matplotlib").use("Agg")
    truth, median, sigma = toy
    return (calibration_curve(Gaussian(median, sigma / 2), truth),
            calibration_curve(Gaussian(median, sigma), truth))


def test_plot_calibration_curve(curves):
    from matplotlib.figure import Figure

    from astromorphnet.visualization import plot_calibration_curve

    before, after = curves
    fig = plot_calibration_curve(before, label="sims only")
    assert isinstance(fig, Figure) and len(fig.axes) == 1
    ax = fig.axes[0]
    diagonal, *lines = ax.get_lines()
    assert diagonal.get_gid() == "calibration-diagonal"
    np.testing.assert_array_equal(diagonal.get_xdata(), diagonal.get_ydata())
    assert len(lines) == 4
    np.testing.assert_array_equal(lines[1].get_xdata(), before["nominal"])
    np.testing.assert_array_equal(lines[1].get_ydata(), before["r_eff"])
    assert [line.get_color() for line in lines] == ["C0", "C1", "C2", "C3"]
    # Below the diagonal: over-confident.
    assert np.all(lines[0].get_ydata() < lines[0].get_xdata())
    assert ax.get_xlim() == ax.get_ylim() == (0, 1)
    assert len(ax.collections) == 1  # the binomial band

    out = plot_calibration_curve(after, ax=ax, label="calibrated", linestyle="--")
    assert out is fig
    assert len(ax.get_lines()) == 9 and len(ax.collections) == 1  # diagonal drawn once
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == ["±2σ, n = 3000", *(f"{name} (sims only)" for name in NAMES),
                      *(f"{name} (calibrated)" for name in NAMES)]
    assert ax.get_lines()[-1].get_linestyle() == "--"
    fig.savefig(io.BytesIO(), format="png")


def test_plot_calibration_curve_dict(curves):
    from astromorphnet.visualization import plot_calibration_curve

    before, after = curves
    ax = plot_calibration_curve({"before": before, "after": after[["nominal", "mag"]]}).axes[0]
    lines = ax.get_lines()[1:]
    assert [line.get_linestyle() for line in lines] == ["-"] * 4 + ["--"]
    assert [t.get_text() for t in ax.get_legend().get_texts()][-1] == "magnitude (after)"


def test_plot_calibration_curve_validated(curves):
    from matplotlib.figure import Figure

    from astromorphnet.visualization import plot_calibration_curve

    before, _ = curves
    with pytest.raises(ValueError, match="label names a single table"):
        plot_calibration_curve({"a": before}, label="x")
    with pytest.raises(ValueError, match="table is an empty dict"):
        plot_calibration_curve({})
    with pytest.raises(ValueError, match=r"table 'a' must be a calibration_curve table with "
                                         r"a 'nominal' column; got QTable with columns \['mag'\]"):
        plot_calibration_curve({"a": before[["mag"]]})
    with pytest.raises(ValueError, match=r"table has no parameter column among"):
        plot_calibration_curve(before[["nominal"]])
    bad = before.copy()
    bad["mag"][0] = 1.5
    with pytest.raises(ValueError, match=r"coverages must lie in \[0, 1\]; column 'mag' "
                                         r"holds \[1.5\]"):
        plot_calibration_curve(bad)
    with pytest.raises(ValueError, match="ax must be a matplotlib Axes; got Figure"):
        plot_calibration_curve(before, ax=Figure())
