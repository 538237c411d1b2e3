"""Simulated sets on disk: one chunked HDF5 file, written safely, read lazily.

Layout: table ``truth`` (astropy's HDF5 table format, units kept); file
attributes ``survey`` and ``realism`` (JSON), ``seed``, ``n``, ``n_done``,
``complete``, ``fingerprint``, ``astromorphnet_version``; dataset ``images``
``(n, ny, nx)`` float32 chunked by blocks of cutouts.  A run writes
``PATH.partial`` and renames it to ``PATH`` only when complete, so an
interrupted run never leaves a file that looks finished (nor, with
``overwrite=True``, removes the old one early); calling again resumes from
``n_done`` with identical results.

Surviving a kill at any moment (SIGKILL included): ``PATH.partial`` is set
up aside and renamed into place complete; its images are allocated then, so
each block only overwrites image bytes; ``n_done`` is changed in place, and
only after the block's images are flushed.  The killed writer's HDF5 file
lock ends with it: the worker processes do not inherit the open file.
"""

import contextlib
import hashlib
import json
import os

import h5py
import numpy as np

from ..catalog._targets import SersicCatalog
from .._parallel import effective_n_jobs
from ._parameters import _check_count
from ._simulate import _as_survey, _render_blocks, _survey_metadata, _truth_table, master_seed

__all__ = ["SimulatedDataset", "load_dataset", "open_dataset", "simulate_to_hdf5"]

_FORMAT = "astromorphnet-simulation-1"


def simulate_to_hdf5(path, n=None, survey="CANDELS_F160W", *, truth=None, ranges=None,
                     realism=None, stamp_size=None, chunk_size=1024, n_jobs=1, random_state=0,
                     overwrite=False, verbose=False):
    """Simulate straight into an HDF5 file, resumably.

    Parameters
    ----------
    path : str or path-like
        Destination file.
    n : int, optional
        Number of galaxies (when ``truth`` is not given).
    survey, truth, ranges, realism, stamp_size : optional
        As for `simulate_galaxies`.
    chunk_size : int, optional
        Galaxies rendered and written per step (and HDF5 chunk length along
        the first axis, capped at 64 for read efficiency).
    n_jobs : int, optional
        Worker processes (``-1``: all cores); the file is identical for any
        value, and a resumed run may use another.  The workers end with the
        calling process, however it ends.
    random_state : int, optional
        Seed; needed (not None) so that an interrupted run can resume.
    overwrite : bool, optional
        Replace an existing simulated set (only once the new one is
        complete); a file that is not one is never replaced.
    verbose : bool, optional
        Progress bar per step.

    Returns
    -------
    path : str
        The complete file.

    Raises
    ------
    FileExistsError
        If ``path`` exists and ``overwrite`` is False, or it is not an
        astromorphnet simulated set.
    FileNotFoundError, IsADirectoryError
        If the folder of ``path`` does not exist, or ``path`` is a folder.
    ValueError
        If ``random_state`` is None, ``chunk_size`` is not an integer >= 1,
        parameters are invalid (as for `simulate_galaxies`), or
        ``PATH.partial`` is not an astromorphnet run or is a run of a
        different simulation: anything that changes the images (parameters,
        survey, realism, seed, astromorphnet version) must be repeated
        exactly to resume.
    BlockingIOError
        If ``PATH.partial`` is open in another process (a run still writing it).
    OSError
        If ``PATH.partial`` cannot be read as HDF5 (corrupt).

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
    if random_state is None:
        raise ValueError("random_state must be set so that an interrupted run can resume")
    _check_destination(path, overwrite)
    chunk_size = _check_count("chunk_size", chunk_size)
    n_jobs = effective_n_jobs(n_jobs)
    survey = _as_survey(survey, stamp_size)
    seed = master_seed(random_state)
    truth = _truth_table(n, truth, ranges, survey, realism, seed)
    truth.meta.update(_survey_metadata(survey, seed, realism))
    fingerprint = _fingerprint(truth)
    partial = path + ".partial"
    if not _resumable(partial, fingerprint):
        _create(partial, truth, survey, chunk_size, fingerprint)
    with h5py.File(partial, "r+") as f:
        for start in range(int(f.attrs["n_done"]), len(truth), chunk_size):
            block = truth[start:start + chunk_size]
            for offset, images in _render_blocks(block, survey, realism, seed, n_jobs,
                                                 verbose, index_offset=start):
                f["images"][start + offset:start + offset + len(images)] = images
            # The images reach the file before n_done counts them; modify()
            # rewrites the attribute in place, where assigning it would
            # delete and recreate it.
            f.flush()
            f.attrs.modify("n_done", start + len(block))
            f.flush()
        f.attrs.modify("complete", True)
    os.replace(partial, path)
    return path


def _check_destination(path, overwrite):
    """Refuse, before any work, a destination that cannot or must not be written."""
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"cannot write {path}: folder {folder} does not exist")
    if os.path.isdir(path):
        raise IsADirectoryError(f"{path} is a folder; pass the path of the HDF5 file to write")
    if not os.path.exists(path):
        return
    if not overwrite:
        raise FileExistsError(f"{path} exists; pass overwrite=True to replace it")
    if _format_of(path) != _FORMAT:
        raise FileExistsError(f"{path} is not an astromorphnet simulated set: overwrite=True "
                              "replaces only those; move or delete it yourself")


def _format_of(path):
    """The ``format`` attribute of an HDF5 file, or None (not HDF5, or no attribute)."""
    try:
        with h5py.File(path, "r") as f:
            return f.attrs.get("format")
    except OSError:
        return None


def _fingerprint(truth):
    """Digest of what determines the images: every truth value, the meta, the version."""
    digest = hashlib.sha256(json.dumps(dict(truth.meta), sort_keys=True).encode())
    digest.update(_version().encode())
    for name in truth.colnames:
        column = truth[name]
        digest.update(f"{name} [{getattr(column, 'unit', '')}]".encode())
        digest.update(np.ascontiguousarray(getattr(column, "value", column)).tobytes())
    return digest.hexdigest()


def _resumable(partial, fingerprint):
    """Whether ``partial`` exists, as an interrupted run of this very simulation.

    Raises
    ------
    BlockingIOError
        If another process holds it open (a run still writing it).
    OSError
        If it cannot be read as HDF5.
    ValueError
        If it is not an astromorphnet run, or a run of another simulation.
    """
    if not os.path.exists(partial):
        return False
    try:
        with h5py.File(partial, "r") as f:
            attrs = dict(f.attrs)
    except BlockingIOError as error:
        # HDF5 locks the file while it is open for writing; the kernel
        # releases the lock when the writer ends, killed or not.
        raise BlockingIOError(error.errno, f"{partial} is open in another process (a "
                              "simulate_to_hdf5 run still writing it?): let it finish or stop "
                              "it, then repeat the call to resume") from error
    except OSError as error:
        raise OSError(f"{partial} cannot be read as HDF5 (corrupt); delete it to restart "
                      "the simulation") from error
    if attrs.get("format") != _FORMAT:
        raise ValueError(f"{partial} is not an interrupted astromorphnet simulation, and "
                         "simulate_to_hdf5 writes there: move or delete it")
    if attrs.get("fingerprint") != fingerprint:
        raise ValueError(f"{partial} is an interrupted run of a different simulation (or "
                         "astromorphnet version); delete it or repeat the same call to "
                         "resume it")
    return True


def _create(partial, truth, survey, chunk_size, fingerprint):
    """Set up ``partial`` aside and move it into place complete, with no image done."""
    setup = partial + ".new"
    meta = truth.meta
    size = survey.stamp_size
    # Every image chunk is allocated now (not filled: nothing is written),
    # so that writing a block later changes no HDF5 structure a kill could
    # leave half-written.
    dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
    dcpl.set_alloc_time(h5py.h5d.ALLOC_TIME_EARLY)
    dcpl.set_fill_time(h5py.h5d.FILL_TIME_NEVER)
    try:
        with h5py.File(setup, "w") as f:
            truth.write(f, path="truth", serialize_meta=True)
            f.attrs.update(format=_FORMAT, n=len(truth), n_done=0, complete=False,
                           seed=meta["seed"], survey=json.dumps(meta["survey"]),
                           realism=json.dumps(meta["realism"]), fingerprint=fingerprint,
                           astromorphnet_version=_version())
            f.create_dataset("images", shape=(len(truth), size, size), dtype=np.float32,
                             chunks=(min(64, chunk_size, len(truth)), size, size), dcpl=dcpl)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(setup)
        raise
    os.replace(setup, partial)


def _version():
    from .. import __version__

    return __version__


class SimulatedDataset:
    """A simulated set on disk, read lazily (see `open_dataset`).

    Pass it straight to an estimator's ``fit``/``predict``: cutouts are read
    in batches, so sets larger than memory train in constant memory.

    Parameters
    ----------
    path : str or path-like
        A file written by `simulate_to_hdf5`.

    Attributes
    ----------
    truth : `~astropy.table.QTable`
        Parameters with units.
    survey : dict
        The survey configuration (``pixel_scale``, ``zeropoint``, …).

    Raises
    ------
    FileNotFoundError
        If there is no file at ``path`` (an interrupted run's ``.partial``
        is pointed out).
    ValueError
        If the file is not a complete astromorphnet simulated set; reading
        ``images`` once the set is closed.

    Examples
    --------
    >>> import tempfile, os
    >>> from astromorphnet.simulation import SimulatedDataset, simulate_to_hdf5
    >>> path = simulate_to_hdf5(os.path.join(tempfile.mkdtemp(), "sims.h5"), 4,
    ...                         stamp_size=32, random_state=1)
    >>> with SimulatedDataset(path) as ds:
    ...     print(len(ds), ds.survey["name"])
    4 CANDELS_F160W
    """

    def __init__(self, path):
        self.path = os.fspath(path)
        if not os.path.exists(self.path):
            hint = (" (an interrupted run left a .partial file: repeat the "
                    "simulate_to_hdf5 call to finish it)"
                    if os.path.exists(self.path + ".partial") else "")
            raise FileNotFoundError(f"no simulated set at {self.path}{hint}")
        try:
            self._file = h5py.File(self.path, "r")
        except OSError as error:
            raise ValueError(f"{self.path} is not a complete astromorphnet simulated set "
                             "(not an HDF5 file)") from error
        if self._file.attrs.get("format") != _FORMAT or not self._file.attrs.get("complete"):
            interrupted = self._file.attrs.get("format") == _FORMAT
            self._file.close()
            hint = (": an interrupted run; repeat its simulate_to_hdf5 call to finish it"
                    if interrupted else "")
            raise ValueError(f"{self.path} is not a complete astromorphnet simulated set{hint}")
        self._images = self._file["images"]
        self.truth = SersicCatalog.read(self._file, path="truth")
        self.survey = json.loads(self._file.attrs["survey"])

    @property
    def images(self):
        """The ``(n, ny, nx)`` float32 cutouts, read on indexing.

        Raises
        ------
        ValueError
            Once the set is closed.

        Examples
        --------
        >>> import tempfile, os
        >>> from astromorphnet.simulation import open_dataset, simulate_to_hdf5
        >>> path = simulate_to_hdf5(os.path.join(tempfile.mkdtemp(), "sims.h5"), 4,
        ...                         stamp_size=32, random_state=1)
        >>> with open_dataset(path) as ds:
        ...     print(ds.images[:2].shape)
        (2, 32, 32)
        """
        # h5py's own error on a closed file is "Invalid dataset identifier".
        if not self._file:
            raise ValueError(f"the simulated set {self.path} is closed (read after close() or "
                             "outside its with block): open it again with open_dataset()")
        return self._images

    def __len__(self):
        return len(self.truth)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        """Close the file (``images`` can no longer be read).

        Examples
        --------
        >>> import tempfile, os
        >>> from astromorphnet.simulation import open_dataset, simulate_to_hdf5
        >>> path = simulate_to_hdf5(os.path.join(tempfile.mkdtemp(), "sims.h5"), 4,
        ...                         stamp_size=32, random_state=1)
        >>> ds = open_dataset(path)
        >>> images = ds.images[:2]
        >>> ds.close()
        """
        self._file.close()

    def as_stamps(self):
        """The images as the estimators' lazy input (used by ``fit``/``predict``).

        Returns
        -------
        stamps
            The estimators' internal lazy image source, carrying the
            survey's pixel scale and zeropoint.

        Examples
        --------
        >>> import tempfile, os
        >>> from astromorphnet.simulation import open_dataset, simulate_to_hdf5
        >>> path = simulate_to_hdf5(os.path.join(tempfile.mkdtemp(), "sims.h5"), 4,
        ...                         stamp_size=32, random_state=1)
        >>> with open_dataset(path) as ds:
        ...     print(len(ds.as_stamps()))
        4
        """
        from .._input import as_stamps

        return as_stamps(self.images, pixel_scale=self.survey["pixel_scale"],
                         zeropoint=self.survey["zeropoint"])

    def __repr__(self):
        closed = "" if self._file else ", closed"
        return (f"SimulatedDataset({self.path!r}, n={len(self)}, "
                f"survey={self.survey['name']!r}{closed})")


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

    Examples
    --------
    >>> import tempfile, os
    >>> from astromorphnet.simulation import open_dataset, simulate_to_hdf5
    >>> path = simulate_to_hdf5(os.path.join(tempfile.mkdtemp(), "sims.h5"), 4,
    ...                         stamp_size=32, random_state=1)
    >>> with open_dataset(path) as ds:
    ...     print(ds.images[:2].shape, ds.truth.colnames[:4])
    (2, 32, 32) ['mag', 'r_eff', 'sersic_n', 'ellipticity']
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
        Parameters with units; ``meta`` holds the survey and seed.

    Raises
    ------
    FileNotFoundError, ValueError
        As for `open_dataset`.

    Examples
    --------
    >>> import tempfile, os
    >>> from astromorphnet.simulation import load_dataset, simulate_to_hdf5
    >>> path = simulate_to_hdf5(os.path.join(tempfile.mkdtemp(), "sims.h5"), 4,
    ...                         stamp_size=32, random_state=1)
    >>> images, truth = load_dataset(path)
    >>> images.shape, truth.meta["seed"]
    ((4, 32, 32), 1)
    """
    with SimulatedDataset(path) as ds:
        return ds.images[:], ds.truth

