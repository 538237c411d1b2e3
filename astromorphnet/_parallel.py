"""Worker processes shared by the simulations and the classical fitter.

One helper, `ordered_map`, runs tasks in joblib's loky worker processes.
They are started fresh, not forked, so they inherit no open file of the
parent (an HDF5 file being written keeps no lock in them), and each watches
its parent: a parent killed by any signal, SIGKILL included, takes its
workers with it within a fraction of a second.  (loky alone leaves them
running, waiting for tasks that will never come.)
"""

import numbers
import os
import threading
import time

__all__ = ["effective_n_jobs", "ordered_map", "with_progress"]

#: Tasks handed to the workers ahead of the results read (bounds the memory
#: of tasks read lazily, e.g. cutouts from a huge on-disk set).
_TASKS_AHEAD_PER_JOB = 4

#: Seconds between a worker's checks that its parent is alive.
_PARENT_POLL_S = 0.2


def effective_n_jobs(n_jobs):
    """The number of worker processes ``n_jobs`` asks for (joblib's convention).

    Parameters
    ----------
    n_jobs : int or None
        A positive number of processes; ``None`` or ``-1`` for all cores,
        ``-2`` for all but one, and so on (at least one).

    Returns
    -------
    n : int
        The number of processes, >= 1.

    Raises
    ------
    ValueError
        If ``n_jobs`` is 0 or not an integer (e.g. 2.5, True or "2").

    Examples
    --------
    >>> from astromorphnet._parallel import effective_n_jobs
    >>> effective_n_jobs(3)
    3
    """
    cores = os.cpu_count() or 1
    if n_jobs is None:
        return cores
    if isinstance(n_jobs, bool) or not isinstance(n_jobs, numbers.Integral):
        raise ValueError(f"n_jobs must be an integer number of processes (-1: all cores); "
                         f"got {n_jobs!r}")
    n_jobs = int(n_jobs)
    if n_jobs == 0:
        raise ValueError("n_jobs=0 runs no worker: pass a number of processes, or a negative "
                         "number to count back from all cores (-1: all)")
    return max(cores + 1 + n_jobs, 1) if n_jobs < 0 else n_jobs


def ordered_map(function, tasks, n_jobs):
    """``function(task)`` for each task, in order, in ``n_jobs`` worker processes.

    Each worker process uses one GalSim OpenMP thread: more would compete
    with the other workers.  The workers are joblib's reusable loky
    processes: they are started once, end with the parent process, and are
    not forked, so they share no open file with it.

    Parameters
    ----------
    function : callable
        A module-level function (it is sent to the workers by reference).
    tasks : iterable
        Its arguments, read lazily: a few per worker ahead of the results.
    n_jobs : int
        Worker processes, as counted by `effective_n_jobs`; 1 runs the tasks
        here, in this process.

    Returns
    -------
    results : iterator
        ``function(task)`` in the order of ``tasks``.

    Examples
    --------
    >>> from astromorphnet._parallel import ordered_map
    >>> list(ordered_map(abs, [-1, 2, -3], n_jobs=1))
    [1, 2, 3]
    """
    if n_jobs <= 1:
        return map(function, tasks)
    from joblib import Parallel, delayed

    # max_nbytes=None: no memory-mapped copies of large arguments, which a
    # killed parent would leave behind in a temporary folder.
    parallel = Parallel(n_jobs=n_jobs, backend="loky", return_as="generator", batch_size=1,
                        pre_dispatch=f"{_TASKS_AHEAD_PER_JOB} * n_jobs", max_nbytes=None,
                        initializer=_start_worker, initargs=(os.getpid(),))
    return parallel(delayed(function)(task) for task in tasks)


def _start_worker(parent):
    """Set up a worker process: one GalSim thread, and an end with ``parent``."""
    # GalSim's OpenMP threads would fight the other worker processes.
    import galsim

    galsim.utilities.set_omp_threads(1, logger=None)
    threading.Thread(target=_exit_with_parent, args=(parent,), daemon=True,
                     name="astromorphnet-exit-with-parent").start()


def _exit_with_parent(parent):
    # An orphan is adopted by another process (init or a subreaper), so its
    # parent's ID changes: then end at once, as the killed parent did.
    while os.getppid() == parent:
        time.sleep(_PARENT_POLL_S)
    os._exit(1)


def with_progress(results, bar, index_offset=0):
    """Pass ``(start, block)`` results through, ticking ``bar`` (or None) per block.

    Parameters
    ----------
    results : iterable of (int, sequence)
        Blocks and the index of their first item.
    bar : `~astropy.utils.console.ProgressBar` or None
        Ticked once per block.
    index_offset : int, optional
        Subtracted from each ``start``.

    Returns
    -------
    blocks : iterator of (int, sequence)
        The blocks, starts shifted by ``-index_offset``.

    Examples
    --------
    >>> from astromorphnet._parallel import with_progress
    >>> list(with_progress([(10, "ab")], None, index_offset=10))
    [(0, 'ab')]
    """
    for start, block in results:
        if bar is not None:
            bar.update()
        yield start - index_offset, block
