"""Worker-process helpers shared by the simulations and the classical fitter."""

import os

__all__ = ["effective_n_jobs", "init_worker", "with_progress"]


def effective_n_jobs(n_jobs):
    """The number of worker processes ``n_jobs`` asks for (joblib's convention).

    ``None`` and ``-1`` mean all cores, ``-2`` all but one, and so on, at
    least one.

    Raises
    ------
    ValueError
        If ``n_jobs`` is 0.
    """
    cores = os.cpu_count() or 1
    if n_jobs is None:
        return cores
    n_jobs = int(n_jobs)
    if n_jobs == 0:
        raise ValueError("n_jobs=0 runs no worker: pass a number of processes, or a negative "
                         "number to count back from all cores (-1: all)")
    return max(cores + 1 + n_jobs, 1) if n_jobs < 0 else n_jobs


def init_worker():
    """Process-pool initializer: one GalSim OpenMP thread per worker process."""
    # GalSim's OpenMP threads would fight the other worker processes.
    import galsim

    galsim.utilities.set_omp_threads(1, logger=None)


def with_progress(results, bar, index_offset=0):
    """Pass ``(start, block)`` results through, ticking ``bar`` (or None) per block."""
    for start, block in results:
        if bar is not None:
            bar.update()
        yield start - index_offset, block
