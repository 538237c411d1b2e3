"""Predicted against true Sérsic parameters, the reference thesis's figures.

matplotlib is imported inside the functions; figures are made with
`matplotlib.figure.Figure` (no pyplot global state) unless ``axes`` are given.
"""

import astropy.units as u
import numpy as np

from ..catalog._targets import TARGET_UNITS, TARGETS

__all__ = ["plot_calibration_curve", "plot_distributions", "plot_predicted_vs_true"]

# pytest-doctestplus: skip the Examples where matplotlib is not installed.
__doctest_requires__ = {("plot_calibration_curve", "plot_distributions",
                         "plot_predicted_vs_true"): ["matplotlib"]}

#: Parameters drawn on logarithmic axes.
_LOG_TARGETS = ("r_eff", "sersic_n")

_NAMES = {"mag": "magnitude", "r_eff": "effective radius", "sersic_n": "Sérsic index",
          "ellipticity": "ellipticity"}


def plot_predicted_vs_true(y_true, y_pred, *, targets=None, axes=None, label=None,
                           **scatter_kwargs):
    """Scatter predicted against true values, one panel per parameter.

    Each panel has the 1:1 line, axis labels with units, the same range on
    both axes, and R² (`sklearn.metrics.r2_score`, as in
    `~astromorphnet.metrics.r2_table`) in its title, or, for several
    models, in the legend.  ``r_eff`` and ``sersic_n`` are drawn on
    logarithmic axes (non-positive predictions are then not shown; R² still
    counts them).

    Parameters
    ----------
    y_true : `~astropy.table.QTable` or array-like
        True labels: a table with the parameter columns, or an array
        ``(n, len(targets))`` in the units of
        `~astromorphnet.catalog.TARGET_UNITS`.
    y_pred : `~astropy.table.QTable`, array-like, or dict
        Predictions in the same form, or ``{model name: predictions}`` to
        overplot several models, each in its colour, with a legend.
    targets : tuple of str, optional
        Parameters to plot; default: those of
        `~astromorphnet.catalog.TARGETS` in the tables given (all four for
        arrays).
    axes : `~matplotlib.axes.Axes` or array of them, optional
        Where to draw, one Axes per parameter (in order; extra Axes are left
        untouched).  Default: a new figure, 2×2 for four parameters,
        otherwise one row.
    label : str, optional
        Legend label of a single set of predictions (for a dict, its keys
        are the labels).
    **scatter_kwargs
        Passed to `matplotlib.axes.Axes.scatter` (default ``s=6``,
        ``alpha=0.6``, ``linewidths=0``).

    Returns
    -------
    fig : `~matplotlib.figure.Figure`
        The figure holding the panels (that of ``axes`` when given).

    Raises
    ------
    ImportError
        If matplotlib is not installed.
    ValueError
        On unknown targets, missing columns, shapes that differ, NaN
        labels or predictions, too few ``axes``, or a ``label`` with a dict.

    Notes
    -----
    A new figure is a `matplotlib.figure.Figure` made without
    `matplotlib.pyplot`: no global state, no window, nothing to close.
    Save it with ``fig.savefig("file.png")``.  In Jupyter, once the inline
    backend is active (``%matplotlib inline``, or any pyplot import), a cell
    ending in ``fig`` displays it.  To draw into pyplot's figures instead,
    pass their axes: ``fig, axes = plt.subplots(2, 2)``, then
    ``plot_predicted_vs_true(truth, catalog, axes=axes)`` and ``plt.show()``.

    Examples
    --------
    >>> import numpy as np
    >>> from astromorphnet.visualization import plot_predicted_vs_true
    >>> rng = np.random.default_rng(0)
    >>> truth = np.column_stack([rng.uniform(18, 24, 50), rng.uniform(2, 20, 50),
    ...                          rng.uniform(0.5, 6, 50), rng.uniform(0, 0.8, 50)])
    >>> pred = truth * rng.normal(1, [0.01, 0.1, 0.1, 0.05], truth.shape)
    >>> fig = plot_predicted_vs_true(truth, pred)
    >>> [ax.get_title() for ax in fig.axes[:2]]
    ['magnitude (R² = 0.989)', 'effective radius (R² = 0.954)']
    >>> fig.axes[1].get_xlabel(), fig.axes[1].get_yscale()
    ('True effective radius [pix]', 'log')
    >>> fig = plot_predicted_vs_true(truth, {"cnn": pred, "perfect": truth})
    >>> [t.get_text() for t in fig.axes[2].get_legend().get_texts()]
    ['cnn (R² = 0.892)', 'perfect (R² = 1.000)']
    """
    _import_matplotlib()
    from sklearn.metrics import r2_score

    from ..metrics._morphology import _resolve

    is_dict = isinstance(y_pred, dict)
    if is_dict and label is not None:
        raise ValueError("label names a single set of predictions; with a dict of "
                         "models, its keys are the labels")
    targets, true, predictions = _resolve(y_true, y_pred, targets)
    fig, panels = _panels(axes, len(targets))
    style = {"s": 6, "alpha": 0.6, "linewidths": 0, **scatter_kwargs}
    for j, (ax, target) in enumerate(zip(panels, targets)):
        x = true[:, j]
        title = _NAMES[target]
        for name, values in predictions.items():
            y = values[:, j]
            r2 = f"R² = {r2_score(x, y):.3f}"
            if is_dict:
                ax.scatter(x, y, label=f"{name} ({r2})", **style)
            else:
                ax.scatter(x, y, **({"label": label} if label is not None else {}), **style)
                title = f"{title} ({r2})"
        log = target in _LOG_TARGETS
        low, high = _limits(np.concatenate([x, *(v[:, j] for v in predictions.values())]),
                            log, margin=0.03)
        ax.plot([low, high], [low, high], color="k", linestyle="--", linewidth=1,
                label="_1:1")
        if log:
            _log_axis(ax, "x")
            _log_axis(ax, "y")
        ax.set_xlim(low, high)
        ax.set_ylim(low, high)
        ax.set_xlabel(f"True {_axis_label(target)}")
        ax.set_ylabel(f"Predicted {_axis_label(target)}")
        ax.set_title(title)
        if is_dict or label is not None:
            ax.legend(loc="upper left", fontsize="small", markerscale=2)
    return fig


def plot_distributions(y_true, y_pred, *, targets=None, bins=30, axes=None):
    """Histograms of true and predicted values, one panel per parameter.

    The true distribution is filled in grey; each set of predictions is a
    coloured outline over the same bins.  ``r_eff`` and ``sersic_n`` are
    binned logarithmically, on logarithmic axes (non-positive values are
    then not counted).

    Parameters
    ----------
    y_true : `~astropy.table.QTable` or array-like
        True labels: a table with the parameter columns, or an array
        ``(n, len(targets))`` in the units of
        `~astromorphnet.catalog.TARGET_UNITS`.
    y_pred : `~astropy.table.QTable`, array-like, or dict
        Predictions in the same form, or ``{model name: predictions}`` to
        overplot several models.
    targets : tuple of str, optional
        Parameters to plot; default: those of
        `~astromorphnet.catalog.TARGETS` in the tables given (all four for
        arrays).
    bins : int or dict, optional
        Number of bins spanning the true and predicted values of each
        parameter (default 30), or ``{parameter: number or bin edges}``
        (parameters missing from the dict get 30 bins).
    axes : `~matplotlib.axes.Axes` or array of them, optional
        Where to draw, one Axes per parameter (in order).  Default: a new
        figure, 2×2 for four parameters, otherwise one row.

    Returns
    -------
    fig : `~matplotlib.figure.Figure`
        The figure holding the panels (that of ``axes`` when given).

    Raises
    ------
    ImportError
        If matplotlib is not installed.
    ValueError
        On unknown targets, missing columns, shapes that differ, NaN labels
        or predictions, too few ``axes``, or malformed ``bins``.

    Notes
    -----
    Like `plot_predicted_vs_true`, a new figure is made without
    `matplotlib.pyplot`; see there how to show or save it.

    Examples
    --------
    >>> import numpy as np
    >>> from astromorphnet.visualization import plot_distributions
    >>> rng = np.random.default_rng(0)
    >>> truth = np.column_stack([rng.uniform(18, 24, 50), rng.uniform(2, 20, 50),
    ...                          rng.uniform(0.5, 6, 50), rng.uniform(0, 0.8, 50)])
    >>> fig = plot_distributions(truth, {"cnn": truth * 1.05}, bins=10)
    >>> ax = fig.axes[2]
    >>> ax.get_xlabel(), ax.get_xscale(), [t.get_text() for t in ax.get_legend().get_texts()]
    ('Sérsic index', 'log', ['true', 'cnn'])
    """
    _import_matplotlib()
    from ..metrics._morphology import _resolve

    is_dict = isinstance(y_pred, dict)
    targets, true, predictions = _resolve(y_true, y_pred, targets)
    bins = _bins_per_target(bins, targets)
    fig, panels = _panels(axes, len(targets))
    for j, (ax, target) in enumerate(zip(panels, targets)):
        log = target in _LOG_TARGETS
        values = [true[:, j], *(v[:, j] for v in predictions.values())]
        edges = bins[target]
        if np.ndim(edges) == 0:
            low, high = _limits(np.concatenate(values), log, margin=0.0)
            edges = (np.geomspace if log else np.linspace)(low, high, edges + 1)
        ax.hist(true[:, j], bins=edges, histtype="stepfilled", color="0.8", label="true")
        for name, pred in predictions.items():
            ax.hist(pred[:, j], bins=edges, histtype="step", linewidth=1.5,
                    label=name if is_dict else "predicted")
        if log:
            _log_axis(ax, "x")
        name = _axis_label(target)
        ax.set_xlabel(name[0].upper() + name[1:])
        ax.set_ylabel("Number of galaxies")
        ax.legend(fontsize="small")
    return fig


def plot_calibration_curve(table, *, ax=None, label=None, **plot_kwargs):
    """Observed against nominal coverage, one line per parameter, with the diagonal.

    Calibrated uncertainties follow the diagonal; below it they are
    over-confident (intervals too narrow), above it under-confident.  The
    grey band around the diagonal is where a calibrated estimate falls 95 %
    of the time, ±2 binomial standard errors for the number of galaxies
    ``table.meta["n"]`` (drawn when known; the smallest ``n`` of several
    tables).  Each parameter keeps its colour; several tables (e.g. before
    and after calibration) differ by line style.

    Parameters
    ----------
    table : `~astropy.table.QTable` or dict
        A `~astromorphnet.metrics.calibration_curve` table (column
        ``nominal`` and one column per parameter), or ``{label: table}`` to
        overlay several, each in its line style.
    ax : `~matplotlib.axes.Axes`, optional
        Where to draw, e.g. an Axes already holding another curve to compare
        with.  Default: a new figure.
    label : str, optional
        Legend label of a single table, appended to the parameter names
        (for a dict, its keys are the labels).
    **plot_kwargs
        Passed to `matplotlib.axes.Axes.plot` (default ``marker="o"``,
        ``markersize=3``), e.g. ``linestyle="--"`` for a second curve drawn
        on the same ``ax``.

    Returns
    -------
    fig : `~matplotlib.figure.Figure`
        The figure holding the plot (that of ``ax`` when given).

    Raises
    ------
    ImportError
        If matplotlib is not installed.
    ValueError
        If a table lacks the ``nominal`` column or any parameter column, a
        coverage lies outside [0, 1], the dict is empty, ``label`` is given
        with a dict, or ``ax`` is not an Axes.

    See Also
    --------
    astromorphnet.metrics.calibration_curve : The table plotted.

    Notes
    -----
    Like `plot_predicted_vs_true`, a new figure is made without
    `matplotlib.pyplot`; see there how to show or save it.

    Examples
    --------
    >>> from astropy.table import QTable
    >>> from astromorphnet.visualization import plot_calibration_curve
    >>> before = QTable({"nominal": [0.25, 0.5, 0.75], "mag": [0.1, 0.3, 0.5],
    ...                  "r_eff": [0.2, 0.4, 0.6]}, meta={"n": 500})
    >>> after = QTable({"nominal": [0.25, 0.5, 0.75], "mag": [0.26, 0.49, 0.76],
    ...                 "r_eff": [0.24, 0.52, 0.74]}, meta={"n": 500})
    >>> fig = plot_calibration_curve({"sims only": before, "calibrated": after})
    >>> ax = fig.axes[0]
    >>> ax.get_xlabel(), ax.get_ylabel()
    ('Nominal coverage', 'Observed coverage')
    >>> labels = [t.get_text() for t in ax.get_legend().get_texts()]
    >>> labels[0], labels[1:4:2]
    ('±2σ, n = 500', ['magnitude (sims only)', 'magnitude (calibrated)'])

    The same, curve by curve on one Axes:

    >>> fig = plot_calibration_curve(before, label="sims only")
    >>> fig = plot_calibration_curve(after, ax=fig.axes[0], label="calibrated", linestyle="--")
    >>> len(fig.axes[0].get_lines())  # the diagonal and two curves per table
    5
    """
    _import_matplotlib()
    from matplotlib.axes import Axes

    is_dict = isinstance(table, dict)
    if is_dict and label is not None:
        raise ValueError("label names a single table; with a dict of tables, its keys "
                         "are the labels")
    tables = table if is_dict else {label: table}
    if not tables:
        raise ValueError("table is an empty dict: give {label: calibration_curve table}")
    curves = {name: _calibration_columns(t, name if is_dict else None)
              for name, t in tables.items()}
    if ax is None:
        from matplotlib.figure import Figure

        fig = Figure(figsize=(4.8, 4.5), layout="constrained")
        ax = fig.add_subplot()
    elif not isinstance(ax, Axes):
        raise ValueError(f"ax must be a matplotlib Axes; got {type(ax).__name__}")
    _draw_diagonal(ax, [t.meta.get("n") for t in tables.values()])
    styles = ("-", "--", ":", "-.")
    for k, (name, (nominal, columns)) in enumerate(curves.items()):
        style = {"marker": "o", "markersize": 3,
                 **({"linestyle": styles[k % len(styles)]} if is_dict else {}), **plot_kwargs}
        order = np.argsort(nominal)
        for target, observed in columns.items():
            text = _NAMES[target] if name is None else f"{_NAMES[target]} ({name})"
            ax.plot(nominal[order], observed[order], label=text,
                    color=f"C{TARGETS.index(target)}", **style)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_aspect("equal")
    ax.set_xlabel("Nominal coverage")
    ax.set_ylabel("Observed coverage")
    ax.legend(loc="upper left", fontsize="small")
    return ax.figure


def _calibration_columns(table, name):
    """``nominal`` and ``{parameter: observed}`` of a calibration-curve table."""
    what = "table" if name is None else f"table {name!r}"
    colnames = getattr(table, "colnames", None)
    if colnames is None or "nominal" not in colnames:
        raise ValueError(f"{what} must be a calibration_curve table with a 'nominal' column; "
                         f"got {type(table).__name__} with columns {colnames}")
    columns = {t: np.asarray(table[t], dtype=np.float64) for t in TARGETS if t in colnames}
    if not columns:
        raise ValueError(f"{what} has no parameter column among {TARGETS}; its columns are "
                         f"{colnames}")
    nominal = np.asarray(table["nominal"], dtype=np.float64)
    for column, values in {"nominal": nominal, **columns}.items():
        if not np.all((values >= 0) & (values <= 1)):
            raise ValueError(f"{what}: coverages must lie in [0, 1]; column {column!r} "
                             f"holds {values[~((values >= 0) & (values <= 1))].tolist()}")
    return nominal, columns


def _draw_diagonal(ax, sizes):
    """The diagonal and, for ``n`` galaxies, its ±2σ binomial band; once per Axes."""
    if any(line.get_gid() == "calibration-diagonal" for line in ax.get_lines()):
        return
    ax.plot([0, 1], [0, 1], color="k", linestyle="--", linewidth=1, label="_ideal",
            gid="calibration-diagonal")
    sizes = [n for n in sizes if isinstance(n, (int, np.integer)) and n > 0]
    if sizes:
        n = min(sizes)
        p = np.linspace(0, 1, 101)
        half = 2 * np.sqrt(p * (1 - p) / n)
        ax.fill_between(p, p - half, p + half, color="0.85", linewidth=0,
                        label=f"±2σ, n = {n}")


def _import_matplotlib():
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise ImportError("astromorphnet.visualization needs matplotlib: "
                          "python -m pip install matplotlib") from None


def _panels(axes, n):
    """The figure and ``n`` Axes: new ones, or the first ``n`` of ``axes``."""
    from matplotlib.axes import Axes

    if axes is None:
        from matplotlib.figure import Figure

        ncols = 2 if n == 4 else n
        nrows = -(-n // ncols)
        fig = Figure(figsize=(4.2 * ncols, 3.8 * nrows), layout="constrained")
        return fig, list(fig.subplots(nrows, ncols, squeeze=False).ravel())
    panels = list(np.ravel(np.asarray(axes, dtype=object)))
    if not all(isinstance(ax, Axes) for ax in panels):
        raise ValueError("axes must be a matplotlib Axes or an array of them")
    if len(panels) < n:
        raise ValueError(f"axes has {len(panels)} Axes; the {n} parameters need one each")
    return panels[0].figure, panels[:n]


def _log_axis(ax, which):
    """Log scale with plain tick labels ("20", "0.5"), minor ticks labelled on short ranges."""
    from matplotlib.ticker import LogFormatter

    class PlainLogFormatter(LogFormatter):
        def __call__(self, x, pos=None):
            return f"{x:g}" if super().__call__(x, pos) else ""

    ax.set(**{f"{which}scale": "log"})
    axis = ax.xaxis if which == "x" else ax.yaxis
    axis.set_major_formatter(PlainLogFormatter())
    axis.set_minor_formatter(PlainLogFormatter(labelOnlyBase=False, minor_thresholds=(1, 0.4)))


def _axis_label(target):
    """E.g. ``"effective radius [pix]"``; dimensionless parameters have no unit."""
    unit = TARGET_UNITS[target]
    return _NAMES[target] + ("" if unit == u.dimensionless_unscaled
                             else f" [{unit.to_string()}]")


def _limits(values, log, margin):
    """A range covering the finite (positive, on log axes) values, widened by ``margin``."""
    values = values[np.isfinite(values) & ((values > 0) if log else True)]
    if len(values) == 0:
        return (0.1, 10.0) if log else (0.0, 1.0)
    low, high = values.min(), values.max()
    if log:
        low, high = np.log10(low), np.log10(high)
    if high <= low:
        low, high = low - 0.5, high + 0.5
    pad = margin * (high - low)
    low, high = low - pad, high + pad
    return (10.0 ** low, 10.0 ** high) if log else (low, high)


def _bins_per_target(bins, targets):
    spec = dict(bins) if isinstance(bins, dict) else dict.fromkeys(targets, bins)
    unknown = set(spec) - set(TARGETS)
    if unknown:
        raise ValueError(f"bins has unknown parameter(s) {sorted(unknown)}; "
                         f"expected names among {TARGETS}")
    out = {}
    for target in targets:
        value = spec.get(target, 30)
        if np.ndim(value) == 0:
            if not (isinstance(value, (int, np.integer)) and not isinstance(value, bool)
                    and value >= 1):
                raise ValueError(f"bins for {target} must be a positive int or bin edges; "
                                 f"got {value!r}")
        else:
            value = np.asarray(value, dtype=np.float64)
            if value.ndim != 1 or len(value) < 2 or np.any(np.diff(value) <= 0):
                raise ValueError(f"bin edges for {target} must increase, at least two; "
                                 f"got {value.tolist()}")
        out[target] = value
    return out
