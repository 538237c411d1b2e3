"""`measure` on a ``dask.distributed`` cluster: tile jobs as tasks, the model once per worker.

Shipping a Keras model inside every task serialises the network anew each
time (the pitfall of ``map_blocks(model.predict)``).  Here the bytes of the
estimator's file are scattered once to every worker; each task gets a
reference to them, and the first task on a worker loads the estimator into
a small per-process cache keyed by the file's hash.  A later `measure` with
the same model finds it loaded; concurrent calls with other models do not
disturb each other.  This module imports ``distributed``: it is imported
only when a ``client`` is given.
"""

import hashlib
import os
import tempfile
import threading
from collections import OrderedDict

from distributed import Client, as_completed, get_worker

from ._measure import run_job

__all__ = ["MAX_MODELS", "run_on_cluster"]

#: Estimators a worker process keeps loaded (the least recently used goes first).
MAX_MODELS = 2

#: The estimators loaded in this (worker) process, by the hash of their file.
_MODELS = OrderedDict()
_LOCK = threading.Lock()


def _estimator(key, payload):
    """The estimator of the file ``payload`` (hash ``key``), loaded here on first use."""
    with _LOCK:  # tasks on several threads of one worker load it once
        if key not in _MODELS:
            from ..estimators import load
            from ._measure import _catalog_output

            worker = get_worker()
            _limit_threads(worker.state.nthreads)
            with tempfile.TemporaryDirectory(dir=worker.local_directory) as folder:
                path = os.path.join(folder, "model.pkl")
                with open(path, "wb") as file:
                    file.write(payload)
                _MODELS[key] = _catalog_output(load(path))
            while len(_MODELS) > MAX_MODELS:
                _MODELS.popitem(last=False)
        _MODELS.move_to_end(key)
        return _MODELS[key]


def _limit_threads(n):
    """Give TensorFlow as many threads as the worker has, not every core of the machine.

    Several worker processes on one machine would otherwise each run a pool
    as large as the machine and oversubscribe it.
    """
    import keras

    if keras.backend.backend() != "tensorflow":
        return
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(n)
        tf.config.threading.set_inter_op_parallelism_threads(n)
    except RuntimeError:  # TensorFlow already started in this process: keep its pools
        pass


def _run(job, model_key, payload, settings):
    return run_job(job, _estimator(model_key, payload), settings)


def _model_file(estimator, path):
    """The bytes of the estimator's file (saved to a temporary one when in memory)."""
    if path is None:
        with tempfile.TemporaryDirectory() as folder:
            path = os.path.join(folder, "model.pkl")
            estimator.save(path)
            with open(path, "rb") as file:
                return file.read()
    with open(path, "rb") as file:
        return file.read()


def run_on_cluster(client, jobs, estimator, path, settings, done):
    """Run ``jobs`` on a Dask cluster; return their results in job order.

    Parameters
    ----------
    client : ``dask.distributed.Client`` or str
        The cluster's client, or its scheduler's address (a client is opened
        and closed here).
    jobs : list of `~astromorphnet.pipeline._measure._Job`
        The tiles to measure.
    estimator : estimator
        The fitted estimator.
    path : str or None
        Its file, when it was loaded from one (it is saved otherwise).
    settings : `~astromorphnet.pipeline._measure._Settings`
        Options shared by the jobs.
    done : callable
        Called as ``done(job, result)`` as each job finishes (progress).

    Returns
    -------
    results : list of `~astromorphnet.pipeline._measure._Result`

    Raises
    ------
    TypeError
        If ``client`` is neither a ``dask.distributed.Client`` nor an address.
    """
    if isinstance(client, str):
        with Client(client) as own:
            return run_on_cluster(own, jobs, estimator, path, settings, done)
    if not isinstance(client, Client):
        raise TypeError(f"client must be a dask.distributed Client or a scheduler address; "
                        f"got {type(client).__name__}")
    payload = _model_file(estimator, path)
    key = hashlib.sha256(payload).hexdigest()
    # Once to each worker, released with this call's tasks.
    shared = client.scatter(payload, broadcast=True)
    futures = client.map(_run, jobs, model_key=key, payload=shared, settings=settings,
                         pure=False)
    order = {future.key: i for i, future in enumerate(futures)}
    results = [None] * len(jobs)
    try:
        for future, result in as_completed(futures, with_results=True):
            i = order[future.key]
            results[i] = result
            done(jobs[i], result)
    finally:
        client.cancel(futures)
    return results
