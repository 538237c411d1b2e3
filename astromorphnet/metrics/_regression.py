"""Regression metrics over Sérsic parameters."""

import numpy as np
from astropy.table import QTable
from sklearn.metrics import r2_score

from ._morphology import _resolve

__all__ = ["r2_table"]


def r2_table(y_true, y_pred, *, targets=None):
    """Per-parameter coefficient of determination R², one row per model.

    The layout of the reference thesis's tables 4.2 and 4.5.

    Parameters
    ----------
    y_true : `~astropy.table.QTable` or array-like
        True labels: a table with the parameter columns, or an array
        ``(n, len(targets))``.
    y_pred : `~astropy.table.QTable`, array-like, or dict
        Predictions in the same form, or ``{model name: predictions}`` for
        several models.
    targets : tuple of str, optional
        Parameters to score; default: those of `~astromorphnet.catalog.TARGETS`
        present in every table given (all four for arrays).

    Returns
    -------
    table : `~astropy.table.QTable`
        Column ``model`` and one R² column per parameter.

    Raises
    ------
    ValueError
        If the shapes differ, columns are missing, labels hold NaN or lie
        outside `~astromorphnet.catalog.PHYSICAL_RANGES`.

    Examples
    --------
    >>> import numpy as np
    >>> from astromorphnet.metrics import r2_table
    >>> truth = np.array([[20.0, 3.0, 1.0, 0.2], [22.0, 5.0, 4.0, 0.5], [24.0, 9.0, 2.0, 0.7]])
    >>> table = r2_table(truth, {"perfect": truth, "offset": truth + 0.1})
    >>> table["sersic_n"].round(3).tolist()
    [1.0, 0.994]
    """
    targets, true, predictions = _resolve(y_true, y_pred, targets)
    rows = [[name] + list(np.atleast_1d(r2_score(true, values, multioutput="raw_values")))
            for name, values in predictions.items()]
    return QTable(rows=rows, names=("model",) + tuple(targets))
