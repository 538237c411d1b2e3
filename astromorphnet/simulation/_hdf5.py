"""Simulated sets on disk: one chunked HDF5 file, written safely, read lazily.

Layout: dataset ``images`` ``(n, ny, nx)`` float32 chunked by blocks of
cutouts; table ``truth`` (astropy's HDF5 table format, units kept); file
attributes ``survey`` (JSON), ``seed``, ``n``, ``n_done``, ``complete``,
``astromorphnet_version``.  A run writes ``PATH.partial`` and renames it to
``PATH`` only when complete, so an interrupted run never leaves a file that
looks finished; calling again resumes from ``n_done`` with identical results.
"""

import json
import os

import h5py
import numpy as np
from astropy.table import QTable

from ._parameters import draw_parameters
from ._simulate import (_add_realism_columns, _as_survey, _render_blocks, master_seed,
                        survey_metadata)

__all__ = ["SimulatedDataset", "load_dataset", "open_dataset", "simulate_to_hdf5"]

_FORMAT = "astromorphnet-simulation-1"


def simulate_to_hdf5(path, n, survey="CANDELS_F160W", *, ranges=None, realism=None,
                     stamp_size=None, chunk_size=1024, n_jobs=1, random_state=0,
                     overwrite=False, verbose=False):
    """Simulate straight into an HDF5 file, resumably.

    Parameters
    ----------
    path : str or path-like
        Destination file.
    n : int
        Number of galaxies.
    survey, ranges, realism, stamp_size, n_jobs, verbose
        As for `simulate_galaxies`.
    chunk_size : int, optional
        Galaxies rendered and written per step (and HDF5 chunk length along
        the first axis, capped at 64 for read efficiency).
    random_state : int, optional
        Seed; needed (not None) so that an interrupted run can resume.
    overwrite : bool, optional
        Replace an existing complete file.
    verbose : bool, optional
        Progress bar per step.

    Returns
    -------
    path : str
        The complete file.

    Raises
    ------
    FileExistsError
        If ``path`` exists and ``overwrite`` is False.
    ValueError
        If a partial file from a different configuration is in the way.

    Examples
    --------
    >>> import tempfile, os
    >>> from astromorphnet.simulation import simulate_to_hdf5, open_dataset
    >>> path = os.path.join(tempfile.mkdtemp(), "sims.h5")
    >>> _ = simulate_to_hdf5(path, 8, stamp_size=32, random_state=1)
    >>> with open_dataset(path) as ds:
    ...     print(len(ds), ds.images.shape, ds.truth["mag"].unit)
    8 (8, 32, 32) mag(AB)
    """
    path = os.fspath(path)
    if os.path.exists(path):
        if not overwrite:
            raise FileExistsError(f"{path} exists; pass overwrite=True to replace it")
        os.remove(path)
    if random_state is None:
        raise ValueError("random_state must be set so that an interrupted run can resume")
    survey = _as_survey(survey, stamp_size)
    seed = master_seed(random_state)
    meta = survey_metadata(survey, seed, realism)
    partial = path + ".partial"
    with h5py.File(partial, "a") as f:
        if "images" in f:
            _check_resumable(f, n, meta, partial)
            truth = QTable.read(f, path="truth")
        else:
            truth = draw_parameters(n, ranges, random_state=np.random.RandomState(seed % 2**32))
            truth = _add_realism_columns(truth, realism, seed)
            truth.meta.update(meta)
            _create(f, truth, survey, meta, chunk_size)
        start = int(f.attrs["n_done"])
        for block_start in range(start, n, chunk_size):
            block = truth[block_start:block_start + chunk_size]
            for offset, images in _render_blocks(block, survey, realism, seed, n_jobs,
                                                 verbose, index_offset=block_start):
                f["images"][block_start + offset:block_start + offset + len(images)] = images
            f.attrs["n_done"] = block_start + len(block)
            f.flush()
        f.attrs["complete"] = True
    os.replace(partial, path)
    return path


def _create(f, truth, survey, meta, chunk_size):
    size = survey.stamp_size
    f.create_dataset("images", shape=(len(truth), size, size), dtype=np.float32,
                     chunks=(min(64, chunk_size, len(truth)), size, size))
    truth.write(f, path="truth", serialize_meta=True)
    f.attrs.update(format=_FORMAT, n=len(truth), n_done=0, complete=False,
                   seed=meta["seed"], survey=json.dumps(meta["survey"]),
                   realism=json.dumps(meta["realism"]),
                   astromorphnet_version=_version())


def _check_resumable(f, n, meta, partial):
    same = (f.attrs.get("n") == n and f.attrs.get("seed") == meta["seed"]
            and json.loads(f.attrs.get("survey", "null")) == meta["survey"]
            and json.loads(f.attrs.get("realism", "null")) == meta["realism"])
    if not same:
        raise ValueError(f"{partial} is an interrupted run of a different simulation; "
                         "delete it or repeat the same call to resume it")


def _version():
    from .. import __version__

    return __version__


class SimulatedDataset:
    """A simulated set on disk, read lazily (see `open_dataset`).

    Pass it straight to an estimator's ``fit``/``predict``: cutouts are read
    in batches, so sets larger than memory train in constant memory.

    Attributes
    ----------
    images : `h5py.Dataset`
        ``(n, ny, nx)`` float32, read on indexing.
    truth : `~astropy.table.QTable`
        Parameters with units.
    survey : dict
        The survey configuration (``pixel_scale``, ``zeropoint``, …).
    """

    def __init__(self, path):
        self.path = os.fspath(path)
        if not os.path.exists(self.path):
            hint = (" (an interrupted run left a .partial file: repeat the "
                    "simulate_to_hdf5 call to finish it)"
                    if os.path.exists(self.path + ".partial") else "")
            raise FileNotFoundError(f"no simulated set at {self.path}{hint}")
        self._file = h5py.File(self.path, "r")
        if self._file.attrs.get("format") != _FORMAT or not self._file.attrs.get("complete"):
            self._file.close()
            raise ValueError(f"{self.path} is not a complete astromorphnet simulated set")
        self.images = self._file["images"]
        self.truth = QTable.read(self._file, path="truth")
        self.survey = json.loads(self._file.attrs["survey"])

    def __len__(self):
        return len(self.images)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        """Close the file."""
        self._file.close()

    def as_stamps(self):
        """The images as the estimators' lazy input (internal protocol)."""
        from .._input import as_stamps

        return as_stamps(self.images, pixel_scale=self.survey["pixel_scale"],
                         zeropoint=self.survey["zeropoint"])

    def __repr__(self):
        return f"SimulatedDataset({self.path!r}, n={len(self)}, survey={self.survey['name']!r})"


def open_dataset(path):
    """Open a simulated set written by `simulate_to_hdf5`, lazily.

    Parameters
    ----------
    path : str or path-like
        The file.

    Returns
    -------
    dataset : `SimulatedDataset`
        Use as a context manager, or call ``close()``.

    Raises
    ------
    FileNotFoundError
        If there is no complete file (an interrupted run's ``.partial`` is
        pointed out).
    ValueError
        If the file is not a complete astromorphnet simulated set.
    """
    return SimulatedDataset(path)


def load_dataset(path):
    """Read a whole simulated set into memory.

    Parameters
    ----------
    path : str or path-like
        The file.

    Returns
    -------
    images : `~numpy.ndarray`
        ``(n, ny, nx)`` float32.
    truth : `~astropy.table.QTable`
    """
    with SimulatedDataset(path) as ds:
        return ds.images[:], ds.truth

