"""Progress output that stays readable in log files.

Keras's progress bar (``verbose=1``) redraws itself with carriage returns,
backspaces and ANSI colour codes whether or not its output is a terminal
(Keras 3 takes every POSIX system for an interactive display), so a log
file of a batch job fills with control characters.  Keras's ``verbose=2``
writes one plain line per epoch; `keras_verbose` picks it when the output
is not a terminal.
"""

import sys
from numbers import Integral

__all__ = ["interactive", "keras_verbose"]


def interactive(stream=None):
    """Whether ``stream`` displays a redrawn progress bar.

    True for a terminal and in a Jupyter kernel (whose front end renders
    carriage returns); False for a file or a pipe.

    Parameters
    ----------
    stream : file-like, optional
        The output to test (default: ``sys.stdout`` at call time, which is
        where Keras writes).

    Returns
    -------
    interactive : bool

    Examples
    --------
    >>> import io
    >>> from astromorphnet._progress import interactive
    >>> interactive(io.StringIO())
    False
    """
    stream = sys.stdout if stream is None else stream
    if "ipykernel" in sys.modules:
        return True
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


def keras_verbose(verbose, stream=None):
    """The ``verbose`` value to give Keras's ``fit`` for an estimator's ``verbose``.

    Parameters
    ----------
    verbose : int or bool
        The estimator's verbosity: 0 (or False) silent; 1 (or True) a
        progress bar on a terminal, one plain line per epoch otherwise;
        2 or more one plain line per epoch everywhere.
    stream : file-like, optional
        Where Keras writes (default: ``sys.stdout`` at call time).

    Returns
    -------
    verbose : {0, 1, 2}
        Keras's value: 0 silent, 1 progress bar, 2 one line per epoch (no
        carriage returns, backspaces or colour codes).

    Raises
    ------
    ValueError
        If ``verbose`` is not a non-negative integer or a bool.

    Examples
    --------
    >>> import io
    >>> from astromorphnet._progress import keras_verbose
    >>> keras_verbose(1, stream=io.StringIO())   # a log file: one line per epoch
    2
    >>> keras_verbose(0), keras_verbose(3)
    (0, 2)
    """
    if not isinstance(verbose, Integral) or verbose < 0:
        raise ValueError(f"verbose must be a non-negative integer or a bool; got {verbose!r}")
    if verbose == 0:
        return 0
    if verbose == 1 and interactive(stream):
        return 1
    return 2
