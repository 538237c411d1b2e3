"""Estimator files: a recognisable header, recorded versions, atomic writes.

A file written by ``save`` is::

    MAGIC | header length (4 bytes, big-endian) | JSON header | pickle

The JSON header names the estimator class, the versions of the packages
that wrote it, and the size and SHA-256 of the pickle, so that `load`
recognises a foreign, truncated or corrupted file, and an estimator of the
wrong class, before unpickling anything.  Bare pickles (files written
before the header existed, or by `pickle.dump`/`joblib.dump`) still load.
"""

import functools
import hashlib
import importlib
import io
import json
import os
import pickle
import struct
import tempfile
import uuid
import warnings
import zipfile
from importlib.metadata import PackageNotFoundError, version

from astropy.utils.exceptions import AstropyUserWarning

__all__ = ["SavedVersionWarning"]

#: Like PNG's signature: a non-ASCII first byte marks the file as binary, and
#: the CR LF / LF / Ctrl-Z tail shows damage by a text-mode transfer.
MAGIC = b"\x89astromorphnet\r\n\x1a\n"
#: Version of the file layout; `load` refuses files of a newer layout.
FORMAT = 1
_LENGTH = struct.Struct(">I")
#: Headers are a few hundred bytes; a larger length means a damaged file.
_MAX_HEADER = 2**16
#: Packages whose versions a saved estimator records (distribution names to
#: try, in order: TensorFlow ships under several).
_PACKAGES = {
    "astromorphnet": ("astromorphnet",),
    "keras": ("keras", "keras-nightly"),
    "tensorflow": ("tensorflow", "tensorflow-cpu", "tensorflow-macos", "tensorflow-intel",
                   "tf-nightly"),
    "scikit-learn": ("scikit-learn",),
    "numpy": ("numpy",),
}
#: Suffixes Keras reads as its own network files.
_KERAS_SUFFIXES = (".keras", ".h5", ".hdf5")
#: First bytes of formats a user may pass to `load` by mistake.
_SIGNATURES = (
    (b"\x89HDF\r\n\x1a\n", "an HDF5 file (a Keras .h5 network or a simulated data set? "
                           "keras.saving.load_model or astromorphnet.simulation.open_dataset "
                           "read those)"),
    (b"\x93NUMPY", "a NumPy .npy array"),
    (b"SIMPLE  =", "a FITS file"),
    (b"\x1f\x8b", "a gzip-compressed file (joblib.load reads compressed joblib.dump files)"),
    (b"BZh", "a bzip2-compressed file (joblib.load reads compressed joblib.dump files)"),
    (b"\xfd7zXZ", "an xz-compressed file (joblib.load reads compressed joblib.dump files)"),
)
_EXPECTS = "load expects a file written by an astromorphnet estimator's save()"


class SavedVersionWarning(AstropyUserWarning):
    """A saved estimator was written with other package versions than those running.

    Keras networks and scikit-learn objects are not guaranteed to behave the
    same across versions: check the reloaded estimator's predictions on a
    few cutouts of known answer, or refit it.

    Parameters
    ----------
    message : str
        What differs.
    mismatches : dict, optional
        ``{package: (saved version, running version)}``; a version is None
        where it is unknown.

    Attributes
    ----------
    mismatches : dict
        As given.

    Examples
    --------
    >>> import warnings
    >>> from astromorphnet.estimators import SavedVersionWarning
    >>> warnings.simplefilter("error", SavedVersionWarning)  # make a mismatch fatal
    >>> SavedVersionWarning("keras 3.0.0 saved, 3.1.0 running",
    ...                     {"keras": ("3.0.0", "3.1.0")}).mismatches
    {'keras': ('3.0.0', '3.1.0')}
    >>> warnings.resetwarnings()
    """

    def __init__(self, message, mismatches=None):
        super().__init__(message)
        self.mismatches = dict(mismatches or {})


@functools.cache
def running_versions():
    """``{package: version or None}`` of the packages a saved estimator records."""
    from .. import __version__

    found = {"astromorphnet": __version__}
    for package, distributions in _PACKAGES.items():
        if package in found:
            continue
        found[package] = None
        for distribution in distributions:
            try:
                found[package] = version(distribution)
                break
            except PackageNotFoundError:
                continue
    return found


# -- pickling (used by BaseSersicRegressor.__getstate__/__setstate__) ------
def estimator_state(estimator):
    """Picklable state: the network as ``.keras`` bytes, the running versions."""
    state = estimator.__dict__.copy()
    state.pop("saved_versions_", None)  # describes the file it came from, not this one
    state["_saved_versions"] = dict(running_versions())
    model = state.pop("model_", None)
    if model is not None:
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "model.keras")
            model.save(path)
            with open(path, "rb") as f:
                state["_model_keras"] = _without_timestamps(f.read())
    return state


def _without_timestamps(keras_file):
    """The ``.keras`` zip without its save time: one network, one byte string.

    Keras stamps ``metadata.json`` and the weights' zip entry with the time of
    saving; without them, equal estimators give equal files and hashes
    (``joblib.hash``, which scikit-learn uses to check that ``fit`` leaves
    parameters such as a pretrained estimator untouched).
    """
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(keras_file)) as source, zipfile.ZipFile(out, "w") as copy:
        for info in source.infolist():
            data = source.read(info)
            if info.filename == "metadata.json":
                metadata = json.loads(data)
                metadata.pop("date_saved", None)
                data = json.dumps(metadata).encode()
            copy.writestr(zipfile.ZipInfo(info.filename), data)  # fixed 1980 date
    return out.getvalue()


def restore_state(estimator, state):
    """Inverse of `estimator_state`; warns if the versions differ from the running ones."""
    state = dict(state)
    blob = state.pop("_model_keras", None)
    saved = state.pop("_saved_versions", None)
    estimator.__dict__.update(state)
    estimator.saved_versions_ = saved
    # Before rebuilding the network: if that fails, the warning explains why.
    _warn_versions(type(estimator).__name__, saved)
    if blob is not None:
        import keras

        from .. import models  # noqa: F401  registers the custom layers

        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "model.keras")
            with open(path, "wb") as f:
                f.write(blob)
            estimator.model_ = keras.saving.load_model(path)


def _version_mismatches(saved):
    running = running_versions()
    return {package: (saved.get(package), running[package]) for package in running
            if saved.get(package) != running[package]}


def _warn_versions(name, saved):
    if saved is None:
        warnings.warn(SavedVersionWarning(
            f"this {name} was saved by an astromorphnet that did not record package "
            "versions, so it cannot be checked against the running keras, tensorflow and "
            "scikit-learn; save it again to record them"), stacklevel=2)
        return
    mismatches = _version_mismatches(saved)
    if mismatches:
        listed = "; ".join(f"{package} saved {old}, running {new}"
                           for package, (old, new) in mismatches.items())
        warnings.warn(SavedVersionWarning(
            f"this {name} was saved with other package versions than those running "
            f"({listed}): check its predictions, or refit it", mismatches), stacklevel=2)


# -- writing -----------------------------------------------------------------
def _as_path(path, action):
    """``path`` as a str (user directory expanded), or a clear TypeError/ValueError."""
    try:
        path = os.fsdecode(os.fspath(path))
    except TypeError:
        raise TypeError(f"cannot {action}: path must be a file name (str or os.PathLike); "
                        f"got {type(path).__name__}") from None
    if not path:
        raise ValueError(f"cannot {action}: path is an empty string")
    return os.path.expanduser(path)


def save_estimator(estimator, path):
    """Write ``estimator`` to ``path`` atomically: all of it, or the old file untouched.

    The pickle is made first, in memory (an unpicklable estimator fails before
    anything is written), then written to a temporary file in the destination
    folder, flushed to disk and renamed over ``path``.
    """
    path = _as_path(path, "save")
    if path.endswith(("/", os.sep)):
        raise IsADirectoryError(f"cannot save to {path!r}: it names a folder; give a file name")
    if path.lower().endswith(_KERAS_SUFFIXES):
        # Such a file would look like a network that Keras cannot read.
        raise ValueError(f"cannot save to {path!r}: an estimator file is not a Keras network "
                         "file; give another suffix, such as .pkl (or save the network alone "
                         "with estimator.model_.save)")
    # Through a symbolic link, as open() would: replace the file it points to.
    target = os.path.realpath(path)
    folder = os.path.dirname(target)
    if os.path.isdir(target):
        raise IsADirectoryError(f"cannot save to {path!r}: it is a folder; give a file name, "
                                f"such as {os.path.join(path, 'model.pkl')!r}")
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"cannot save to {path!r}: folder {folder!r} does not exist")
    exists = os.path.exists(target)
    # os.replace would overwrite a write-protected file that open() refuses.
    if exists and not (os.access(target, os.W_OK) and os.stat(target).st_mode & 0o222):
        raise PermissionError(f"cannot save to {path!r}: the file is read-only")
    try:
        payload = pickle.dumps(estimator, protocol=pickle.HIGHEST_PROTOCOL)
    except (pickle.PicklingError, AttributeError, TypeError) as err:
        raise TypeError(f"cannot save this {type(estimator).__name__}: it cannot be pickled "
                        f"({err}); a lambda or locally defined function as a parameter (such "
                        "as architecture) cannot be saved, a module-level function can") from err
    _write_atomic(target, frame(payload, type(estimator)), exists)


def frame(payload, cls, **header):
    """The chunks of an estimator file: magic, header length, header, ``payload``.

    ``header`` entries override the computed ones (tests write damaged files).
    """
    header = json.dumps({
        "format": FORMAT,
        "class": f"{cls.__module__}.{cls.__qualname__}",
        "versions": running_versions(),
        "payload_bytes": len(payload),
        "payload_sha256": hashlib.sha256(payload).hexdigest(),
        **header,
    }).encode()
    return [MAGIC, _LENGTH.pack(len(header)), header, payload]


def _write_atomic(target, chunks, keep_mode):
    folder, name = os.path.split(target)
    tmp = os.path.join(folder, f".{name}.{uuid.uuid4().hex[:12]}.tmp")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    try:
        # Mode 0o666 under the umask, as open() gives (tempfile would give 0o600).
        fd = os.open(tmp, flags, 0o666)
    except PermissionError as err:
        raise PermissionError(f"cannot save to {target!r}: no permission to create files in "
                              f"folder {folder!r}") from err
    try:
        with os.fdopen(fd, "wb") as f:
            for chunk in chunks:
                f.write(chunk)
            f.flush()
            os.fsync(f.fileno())
        if keep_mode:
            os.chmod(tmp, os.stat(target).st_mode & 0o7777)
        os.replace(tmp, target)
    except BaseException:
        # KeyboardInterrupt included: never leave a half-written file behind.
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    _fsync_folder(folder)


def _fsync_folder(folder):
    """Make the rename itself durable (POSIX; folders cannot be opened on Windows)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


# -- reading -----------------------------------------------------------------
def load_estimator(path, expected):
    """Read an estimator file; ``expected`` is the class the caller accepts."""
    path = _as_path(path, "load")
    if os.path.isdir(path):
        raise IsADirectoryError(f"cannot load {path!r}: it is a folder; {_EXPECTS}")
    if not os.path.exists(path):
        raise FileNotFoundError(f"cannot load {path!r}: no such file; {_EXPECTS}")
    with open(path, "rb") as f:
        start = f.read(len(MAGIC))
        if start == MAGIC:
            header, payload = _read_framed(f, path)
            _check_class(header, expected, path)
        elif start.startswith(MAGIC[:14]):
            raise ValueError(f"cannot load {path!r}: the astromorphnet estimator file is "
                             "damaged: its line endings were converted by a text-mode "
                             "transfer; copy it again in binary mode")
        elif start[:1] == b"\x80":  # a bare pickle (protocol 2 or later)
            header, payload = None, start + f.read()
        else:
            raise ValueError(f"cannot load {path!r}: it is {_describe(path, start)}, not an "
                             f"astromorphnet estimator file ({_EXPECTS})")
    estimator = _unpickle(payload, path, header)
    if not isinstance(estimator, expected):
        raise TypeError(f"{path} holds a {type(estimator).__name__}, not a "
                        f"{expected.__name__}; {_EXPECTS}")
    return estimator


def _read_framed(f, path):
    damaged = f"cannot load {path!r}: the astromorphnet estimator file is damaged"
    raw = f.read(_LENGTH.size)
    length = _LENGTH.unpack(raw)[0] if len(raw) == _LENGTH.size else None
    if length is None or length > _MAX_HEADER:
        raise ValueError(f"{damaged} (its header is truncated or unreadable)")
    try:
        header = json.loads(f.read(length).decode())
        fmt, size, digest = (header["format"], header["payload_bytes"],
                             header["payload_sha256"])
    except (ValueError, KeyError, TypeError) as err:
        raise ValueError(f"{damaged} (its header is truncated or unreadable)") from err
    if not isinstance(fmt, int) or fmt > FORMAT:
        saved = header.get("versions", {}).get("astromorphnet")
        raise ValueError(f"cannot load {path!r}: it was written in file format {fmt!r} by "
                         f"astromorphnet {saved}, and this astromorphnet "
                         f"({running_versions()['astromorphnet']}) reads format {FORMAT} or "
                         "older: upgrade astromorphnet")
    payload = f.read()
    if len(payload) != size:
        raise ValueError(f"{damaged}: it holds {len(payload)} bytes of data where save() wrote "
                         f"{size} (an interrupted copy or download?)")
    if hashlib.sha256(payload).hexdigest() != digest:
        raise ValueError(f"{damaged}: its data do not match the checksum save() recorded "
                         "(corrupted on disk or in transfer)")
    return header, payload


def _check_class(header, expected, path):
    """TypeError for an estimator of another class, before anything is unpickled."""
    module, _, name = str(header.get("class", "")).rpartition(".")
    try:
        if not module.startswith("astromorphnet."):
            raise ImportError("not an astromorphnet class")
        saved = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError, ValueError):
        raise ValueError(f"cannot load {path!r}: it holds a {header.get('class')!r}, which "
                         f"this astromorphnet ({running_versions()['astromorphnet']}) does "
                         f"not have (saved by astromorphnet "
                         f"{header.get('versions', {}).get('astromorphnet')})") from None
    if not (isinstance(saved, type) and issubclass(saved, expected)):
        raise TypeError(f"{path} holds a {name}, not a {expected.__name__}; {_EXPECTS}")


def _unpickle(payload, path, header):
    try:
        if header is None and b"joblib.numpy_pickle" in payload:
            import joblib

            # joblib.dump writes arrays outside the pickle stream: only joblib reads it.
            return joblib.load(path)
        return pickle.loads(payload)
    except (MemoryError, Warning):
        # A SavedVersionWarning the user turned into an error must stay one.
        raise
    except Exception as err:
        raise ValueError(f"cannot load {path!r}: unpickling failed with "
                         f"{type(err).__name__}: {err} ({_unpickle_hint(header)})") from err


def _unpickle_hint(header):
    """Why unpickling may have failed, from what the header recorded."""
    versions = header.get("versions") if header is not None else None
    if not isinstance(versions, dict):
        return "it may be truncated or corrupted, or written by incompatible package versions"
    mismatches = _version_mismatches(versions)
    if not mismatches:
        return "the file is intact and the versions match: please report this"
    return "it was saved with " + "; ".join(f"{package} {old} (running {new})"
                                            for package, (old, new) in mismatches.items())


def _describe(path, start):
    """What a file that is not an estimator file seems to be, for error messages."""
    if not start:
        return "empty (0 bytes; a save that was interrupted?)"
    if start.startswith(b"PK\x03\x04"):
        try:
            with zipfile.ZipFile(path) as archive:
                names = set(archive.namelist())
        except (zipfile.BadZipFile, OSError):
            names = set()
        if {"config.json", "metadata.json"} <= names:
            return ("a bare Keras network (.keras file; keras.saving.load_model reads it, "
                    "without the pixel stretch and target scaling an estimator's save() "
                    "keeps with it)")
        return "a zip archive"
    for signature, description in _SIGNATURES:
        if start.startswith(signature):
            return description
    try:
        text = start.decode("utf-8")
    except UnicodeDecodeError as err:
        # The first bytes may end inside a multi-byte character.
        text = start[:err.start].decode("utf-8") if err.start >= len(start) - 3 else ""
    if text and all(c.isprintable() or c in "\t\r\n" for c in text):
        return f"a text file (starting {text.lstrip().splitlines()[0][:40]!r})"
    return f"an unknown binary format (starting {start[:8]!r})"
