"""`measure` on a ``dask.distributed`` cluster: tile jobs as tasks, the model once per worker.

Shipping a Keras model inside every task serialises the network anew each
time (the pitfall of ``map_blocks(model.predict)``).  Here the estimator's
file travels once to each worker in a ``distributed.WorkerPlugin``, which
loads it there; tasks find it in a per-process cache keyed by the file's
hash.  This module imports ``distributed``: it is imported only when a
``client`` is given.
"""

import hashlib
import os
import tempfile

from distributed import Client, WorkerPlugin, as_completed

from ._measure import run_job

__all__ = ["ModelPlugin", "run_on_cluster"]

#: The estimators loaded in this (worker) process, by the hash of their file.
_MODELS = {}


class ModelPlugin(WorkerPlugin):
    """Load an estimator once on each worker, from the bytes of its file.

    Parameters
    ----------
    payload : bytes
        The file written by the estimator's ``save``.

    Attributes
    ----------
    key : str
        SHA-256 of ``payload``: tasks look the estimator up by it.
    name : str
        The plugin's name on the cluster (one per model file).
    """

    def __init__(self, payload):
        self.payload = payload
        self.key = hashlib.sha256(payload).hexdigest()
        self.name = f"astromorphnet-model-{self.key[:16]}"

    def setup(self, worker):
        """Write the file into the worker's folder and load the estimator from it.

        Parameters
        ----------
        worker : ``distributed.Worker``
            The worker starting the plugin.
        """
        from ..estimators import load
        from ._measure import _catalog_output

        _limit_threads(worker.state.nthreads)
        path = os.path.join(worker.local_directory, f"{self.name}.pkl")
        with open(path, "wb") as file:
            file.write(self.payload)
        _MODELS[self.key] = _catalog_output(load(path))

    def teardown(self, worker):
        """Forget the estimator.

        Parameters
        ----------
        worker : ``distributed.Worker``
            The worker stopping the plugin.
        """
        _MODELS.pop(self.key, None)


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


def _run(job, model_key, settings):
    estimator = _MODELS.get(model_key)
    if estimator is None:
        raise RuntimeError("the model was not loaded on this worker: its ModelPlugin did "
                           "not run or failed (see the worker's log)")
    return run_job(job, estimator, settings)


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
    plugin = ModelPlugin(_model_file(estimator, path))
    client.register_plugin(plugin)
    futures = client.map(_run, jobs, model_key=plugin.key, settings=settings, pure=False)
    order = {future.key: i for i, future in enumerate(futures)}
    results = [None] * len(jobs)
    try:
        for future, result in as_completed(futures, with_results=True):
            i = order[future.key]
            results[i] = result
            done(jobs[i], result)
    finally:
        client.cancel(futures)
        client.unregister_worker_plugin(plugin.name)
    return results
