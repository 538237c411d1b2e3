"""visualization: predicted-vs-true and distribution plots (Agg, no display)."""

import io
import subprocess
import sys

import astropy.units as u
import numpy as np
import pytest
from astropy.table import QTable

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")
from matplotlib.figure import Figure  # noqa: E402

from astromorphnet.visualization import plot_distributions, plot_predicted_vs_true  # noqa: E402

UNITS = {"mag": "[mag(AB)]", "r_eff": "[pix]"}


@pytest.fixture
def data(rng):
    truth = np.column_stack([rng.uniform(18, 24, 60), rng.uniform(2, 20, 60),
                             rng.uniform(0.5, 6, 60), rng.uniform(0, 0.8, 60)])
    return truth, truth * rng.normal(1, [0.01, 0.1, 0.1, 0.05], truth.shape)


def test_import_is_light():
    code = ("import io, sys, astromorphnet.visualization\n"
            "heavy = [m for m in ('matplotlib', 'sklearn') if m in sys.modules]\n"
            "assert not heavy, heavy\n"
            "import numpy as np\n"
            "from astromorphnet.visualization import plot_predicted_vs_true\n"
            "plot_predicted_vs_true(np.full((3, 4), 0.2) + 0.1 * np.arange(3)[:, None],"
            " np.full((3, 4), 0.2) + 0.1 * np.arange(3)[:, None]).savefig(io.BytesIO())\n"
            "assert 'matplotlib.pyplot' not in sys.modules\n")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_predicted_vs_true_panels(data):
    truth, pred = data
    fig = plot_predicted_vs_true(truth, pred)
    assert isinstance(fig, Figure) and len(fig.axes) == 4
    for ax, target in zip(fig.axes, ("mag", "r_eff", "sersic_n", "ellipticity")):
        assert "R² = " in ax.get_title()
        assert ax.get_xlabel().startswith("True ") and ax.get_ylabel().startswith("Predicted ")
        if target in UNITS:
            assert ax.get_xlabel().endswith(UNITS[target])
            assert ax.get_ylabel().endswith(UNITS[target])
        scale = "log" if target in ("r_eff", "sersic_n") else "linear"
        assert ax.get_xscale() == ax.get_yscale() == scale
        assert ax.get_xlim() == ax.get_ylim()
        assert ax.get_legend() is None
        line = ax.get_lines()[0]  # the 1:1 line
        np.testing.assert_allclose(line.get_xdata(), line.get_ydata())
    assert fig.axes[0].get_title().startswith("magnitude (R² = 0.9")
    fig.savefig(io.BytesIO(), format="png")


def test_predicted_vs_true_dict_overplots(data):
    truth, pred = data
    fig = plot_predicted_vs_true(truth, {"cnn": pred, "perfect": truth}, marker="x")
    ax = fig.axes[1]
    assert ax.get_title() == "effective radius"
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels[0].startswith("cnn (R² = ") and labels[1] == "perfect (R² = 1.000)"
    assert len(ax.collections) == 2


def test_predicted_vs_true_on_given_axes_and_tables(data):
    truth, pred = data
    fig = Figure()
    axes = fig.subplots(1, 3)
    table = QTable({"r_eff": truth[:, 1] * u.pix, "sersic_n": truth[:, 2]})
    out = plot_predicted_vs_true(table, pred[:, 1:3], targets=("r_eff", "sersic_n"),
                                 axes=axes, label="cnn", color="red")
    assert out is fig
    assert [t.get_text() for t in axes[0].get_legend().get_texts()] == ["cnn"]
    assert "R² = " in axes[1].get_title() and not axes[2].has_data()
    # default targets: the columns of the tables
    assert len(plot_predicted_vs_true(table, table).axes) == 2


def test_plot_errors(data):
    truth, pred = data
    with pytest.raises(ValueError, match="label names a single set of predictions"):
        plot_predicted_vs_true(truth, {"a": pred}, label="x")
    with pytest.raises(ValueError, match=r"axes has 2 Axes; the 4 parameters need one each"):
        plot_predicted_vs_true(truth, pred, axes=Figure().subplots(1, 2))
    with pytest.raises(ValueError, match=r"predictions of 'a' have shape \(10, 4\)"):
        plot_distributions(truth, {"a": pred[:10]})
    with pytest.raises(ValueError, match="bins for mag must be a positive int"):
        plot_distributions(truth, pred, bins=0)
    with pytest.raises(ValueError, match="bin edges for r_eff must increase"):
        plot_distributions(truth, pred, bins={"r_eff": [5, 1]})


def test_distributions(data):
    truth, pred = data
    fig = plot_distributions(truth, pred, bins={"mag": 12, "ellipticity": [0, 0.5, 1]})
    assert isinstance(fig, Figure) and len(fig.axes) == 4
    mag, r_eff, sersic_n, ellipticity = fig.axes
    assert mag.get_xlabel() == "Magnitude [mag(AB)]" and r_eff.get_xlabel().endswith("[pix]")
    assert r_eff.get_xscale() == sersic_n.get_xscale() == "log"
    assert mag.get_xscale() == ellipticity.get_xscale() == "linear"
    assert mag.get_ylabel() == "Number of galaxies"
    assert [t.get_text() for t in mag.get_legend().get_texts()] == ["true", "predicted"]
    assert len(mag.patches) == 2  # the filled true histogram and the predicted outline
    assert ellipticity.get_xlim()[0] <= 0 and ellipticity.get_xlim()[1] >= 1  # given edges
    multi = plot_distributions(truth, {"cnn": pred, "other": truth}, bins=5)
    labels = [t.get_text() for t in multi.axes[3].get_legend().get_texts()]
    assert labels == ["true", "cnn", "other"]
