"""Saving and loading estimators: no data loss, clear errors, recorded versions (issue 11)."""

import errno
import gzip
import io
import json
import os
import pathlib
import pickle
import threading
import time
import warnings
import zipfile
from concurrent.futures import ThreadPoolExecutor

import h5py
import joblib
import numpy as np
import pytest
from astropy.io import fits
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.preprocessing import StandardScaler

from astromorphnet import (AdversarialDARegressor, SersicCNNRegressor, TransferLearningRegressor,
                           load)
from astromorphnet.estimators import _persistence
from astromorphnet.estimators._persistence import MAGIC, SavedVersionWarning, running_versions

IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0


@pytest.fixture(scope="module")
def fitted():
    rng = np.random.default_rng(0)
    return SersicCNNRegressor("light", targets=("ellipticity",), max_epochs=1, batch_size=8,
                              random_state=0).fit(rng.normal(size=(16, 16, 16)),
                                                  rng.uniform(0, 0.5, 16))


@pytest.fixture(scope="module")
def stamps():
    return np.random.default_rng(1).normal(size=(4, 16, 16))


@pytest.fixture(scope="module")
def expected(fitted, stamps):
    return _predict(fitted, stamps)


@pytest.fixture(scope="module")
def saved_bytes(fitted, tmp_path_factory):
    path = tmp_path_factory.mktemp("saved") / "model.pkl"
    fitted.save(path)
    return path.read_bytes()


@pytest.fixture
def good_file(saved_bytes, tmp_path):
    path = tmp_path / "model.pkl"
    path.write_bytes(saved_bytes)
    return path


def _predict(estimator, stamps):
    return np.asarray(estimator.predict(stamps)["ellipticity"])


def _assert_same_fit(restored, fitted):
    """Same network weights and target scaling (cheaper than predicting)."""
    assert restored.model_id_ == fitted.model_id_
    for got, want in zip(restored.model_.get_weights(), fitted.model_.get_weights(),
                         strict=True):
        np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(restored.target_scaler_.scale_, fitted.target_scaler_.scale_)


def _write_framed(path, payload, cls=SersicCNNRegressor, **header):
    path.write_bytes(b"".join(_persistence.frame(payload, cls, **header)))
    return path


class _Os:
    """``os`` for `_persistence` only, with one function replaced (a precise fault)."""

    def __init__(self, **replaced):
        self.__dict__.update(replaced)

    def __getattr__(self, name):
        return getattr(os, name)


def _raiser(exc):
    def fail(*args, **kwargs):
        raise exc
    return fail


class _FullDisk:
    """A file object that writes part of the first chunk, then reports a full disk."""

    def __init__(self, f):
        self.f = f

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.f.close()

    def write(self, chunk):
        self.f.write(chunk[:len(chunk) // 2])
        raise OSError(errno.ENOSPC, "No space left on device")


def _local_builder():
    def build(input_shape, n_outputs):  # a closure: pickle cannot find it by name
        raise AssertionError("never built")
    return build


# -- defect 1: a failed save never damages the existing file ---------------------
@pytest.mark.parametrize("params", [
    {"architecture": lambda input_shape, n_outputs: None},
    {"architecture": _local_builder()},
    {"loss": lambda y_true, y_pred: y_true},
], ids=["lambda-architecture", "closure-architecture", "lambda-loss"])
def test_unpicklable_estimator_keeps_the_old_file(good_file, params):
    before = good_file.read_bytes()
    with pytest.raises(TypeError, match="cannot be pickled.*lambda or locally defined"):
        SersicCNNRegressor(**params).save(good_file)
    assert good_file.read_bytes() == before
    assert os.listdir(good_file.parent) == ["model.pkl"]


@pytest.mark.parametrize("fault, exc", [
    ({"fsync": _raiser(KeyboardInterrupt())}, KeyboardInterrupt),
    ({"fsync": _raiser(OSError(errno.EIO, "I/O error"))}, OSError),
    ({"fdopen": lambda fd, mode: _FullDisk(os.fdopen(fd, mode))}, OSError),
    ({"replace": _raiser(KeyboardInterrupt())}, KeyboardInterrupt),
    ({"replace": _raiser(OSError(errno.EXDEV, "Invalid cross-device link"))}, OSError),
    ({"chmod": _raiser(PermissionError(errno.EPERM, "Operation not permitted"))},
     PermissionError),
], ids=["interrupt-at-fsync", "io-error-at-fsync", "disk-full-mid-write",
        "interrupt-at-rename", "rename-fails", "chmod-fails"])
def test_save_interrupted_or_failing_keeps_the_old_file(fitted, good_file, monkeypatch, fault,
                                                        exc):
    before = good_file.read_bytes()
    good_file.chmod(0o640)  # overwriting copies the old mode: chmod runs too
    monkeypatch.setattr(_persistence, "os", _Os(**fault))
    with pytest.raises(exc):
        fitted.save(good_file)
    assert good_file.read_bytes() == before
    assert os.listdir(good_file.parent) == ["model.pkl"]


def test_interrupt_while_pickling_writes_nothing(fitted, good_file, monkeypatch):
    before = good_file.read_bytes()
    monkeypatch.setattr(_persistence, "estimator_state", _raiser(KeyboardInterrupt()))
    with pytest.raises(KeyboardInterrupt):
        fitted.save(good_file)
    assert good_file.read_bytes() == before
    assert os.listdir(good_file.parent) == ["model.pkl"]


def test_concurrent_saves_leave_one_complete_file(fitted, tmp_path):
    path = tmp_path / "model.pkl"
    estimators = [fitted, clone(fitted), fitted, clone(fitted)]
    barrier = threading.Barrier(len(estimators))

    def save_three_times(estimator):
        barrier.wait()
        for _ in range(3):
            estimator.save(path)

    with ThreadPoolExecutor(len(estimators)) as pool:
        for future in [pool.submit(save_three_times, est) for est in estimators]:
            future.result()
    assert isinstance(load(path), SersicCNNRegressor)
    assert os.listdir(tmp_path) == ["model.pkl"]


def test_load_while_saving_never_sees_a_partial_file(fitted, good_file):
    stop = threading.Event()
    saves = []

    def keep_saving():
        while not stop.is_set():
            fitted.save(good_file)
            saves.append(1)

    writer = threading.Thread(target=keep_saving)
    writer.start()
    try:
        for _ in range(3):
            _assert_same_fit(load(good_file), fitted)
    finally:
        stop.set()
        writer.join()
    assert saves, "the writer never ran"


# -- saving: where to ---------------------------------------------------------------
def test_save_to_a_folder(fitted, tmp_path):
    with pytest.raises(IsADirectoryError, match="it is a folder; give a file name"):
        fitted.save(tmp_path)


def test_save_to_a_folder_name_with_trailing_separator(fitted, tmp_path):
    with pytest.raises(IsADirectoryError, match="names a folder"):
        fitted.save(str(tmp_path / "models") + os.sep)
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("name", ["model.keras", "model.h5", "MODEL.HDF5"])
def test_save_under_a_keras_suffix(fitted, tmp_path, name):
    with pytest.raises(ValueError, match="an estimator file is not a Keras network file"):
        fitted.save(tmp_path / name)
    assert os.listdir(tmp_path) == []


def test_save_into_a_missing_folder(fitted, tmp_path):
    with pytest.raises(FileNotFoundError, match="folder .*missing.* does not exist"):
        fitted.save(tmp_path / "missing" / "model.pkl")


def test_save_over_a_read_only_file(fitted, good_file):
    before = good_file.read_bytes()
    good_file.chmod(0o444)
    with pytest.raises(PermissionError, match="the file is read-only"):
        fitted.save(good_file)
    assert good_file.read_bytes() == before


@pytest.mark.skipif(IS_ROOT, reason="root may write into read-only folders")
def test_save_into_a_read_only_folder(fitted, tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        with pytest.raises(PermissionError, match="no permission to create files"):
            fitted.save(folder / "model.pkl")
    finally:
        folder.chmod(0o755)


def test_save_refused_by_the_file_system(fitted, tmp_path, monkeypatch):
    monkeypatch.setattr(_persistence, "os", _Os(
        open=_raiser(PermissionError(errno.EACCES, "Permission denied"))))
    with pytest.raises(PermissionError, match="no permission to create files in folder"):
        fitted.save(tmp_path / "model.pkl")
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("action", ["save", "load"])
@pytest.mark.parametrize("path", [3, None, io.BytesIO()], ids=["int", "None", "BytesIO"])
def test_path_that_is_not_a_file_name(fitted, action, path):
    call = fitted.save if action == "save" else load
    with pytest.raises(TypeError, match=f"cannot {action}: path must be a file name.*got "
                                        f"{type(path).__name__}"):
        call(path)


@pytest.mark.parametrize("action", ["save", "load"])
def test_empty_path(fitted, action):
    with pytest.raises(ValueError, match=f"cannot {action}: path is an empty string"):
        (fitted.save if action == "save" else load)("")


class _PathLike:
    def __init__(self, path):
        self.path = path

    def __fspath__(self):
        return self.path


@pytest.mark.parametrize("kind", [str, pathlib.Path, os.fsencode, _PathLike],
                         ids=["str", "Path", "bytes", "PathLike"])
def test_path_like_round_trip(fitted, tmp_path, kind):
    path = kind(str(tmp_path / "model.pkl"))
    fitted.save(path)
    _assert_same_fit(load(path), fitted)


def test_home_folder_is_expanded(fitted, tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    fitted.save("~/model.pkl")
    assert (tmp_path / "model.pkl").is_file()
    assert isinstance(load("~/model.pkl"), SersicCNNRegressor)


def test_save_through_a_symbolic_link_replaces_its_target(fitted, good_file, tmp_path):
    link = tmp_path / "current.pkl"
    link.symlink_to(good_file)
    SersicCNNRegressor(max_epochs=7).save(link)
    assert link.is_symlink()
    assert load(good_file).max_epochs == 7


def test_overwrite_keeps_the_file_mode(fitted, good_file):
    good_file.chmod(0o640)
    fitted.save(good_file)
    assert good_file.stat().st_mode & 0o777 == 0o640


def test_new_file_mode_follows_the_umask(fitted, tmp_path):
    old = os.umask(0o027)
    try:
        fitted.save(tmp_path / "model.pkl")
    finally:
        os.umask(old)
    # Not tempfile's private 0o600: a shared model stays readable by the group.
    assert (tmp_path / "model.pkl").stat().st_mode & 0o777 == 0o640


# -- round trips ---------------------------------------------------------------------
def test_unfitted_estimator_round_trips_unfitted(tmp_path, stamps):
    estimator = SersicCNNRegressor("light", targets=("mag", "r_eff"), max_epochs=5)
    estimator.save(tmp_path / "unfitted.pkl")
    restored = load(tmp_path / "unfitted.pkl")
    assert restored.get_params() == estimator.get_params()
    with pytest.raises(NotFittedError):
        restored.predict(stamps)


def test_fitted_round_trip_records_versions(fitted, good_file, stamps, expected):
    restored = SersicCNNRegressor.load(good_file)
    np.testing.assert_array_equal(_predict(restored, stamps), expected)
    assert restored.saved_versions_ == running_versions()
    assert set(restored.saved_versions_) == {"astromorphnet", "keras", "tensorflow",
                                             "scikit-learn", "numpy"}
    assert all(restored.saved_versions_.values())


def test_pickle_round_trip_carries_versions(fitted, stamps, expected):
    restored = pickle.loads(pickle.dumps(fitted))
    np.testing.assert_array_equal(_predict(restored, stamps), expected)
    assert restored.saved_versions_ == running_versions()


def test_save_leaves_the_estimator_unchanged(fitted, tmp_path, stamps, expected):
    before = set(vars(fitted))
    fitted.save(tmp_path / "model.pkl")
    assert set(vars(fitted)) == before
    np.testing.assert_array_equal(_predict(fitted, stamps), expected)


def test_base_class_load_accepts_any_estimator(tmp_path):
    TransferLearningRegressor(trainable="head").save(tmp_path / "transfer.pkl")
    restored = TransferLearningRegressor.load(tmp_path / "transfer.pkl")
    assert restored.trainable == "head"
    assert isinstance(load(tmp_path / "transfer.pkl"), TransferLearningRegressor)


# -- defect 11: loading something else gives one clear error ---------------------
def _text(path, saved):
    path.write_text("mag,r_eff\n21.3,2.0\n")
    return path


def _utf8_text(path, saved):
    path.write_text("Sérsic fits — résumé\n", encoding="utf-8")
    return path


def _keras(path, saved):
    path = path.with_suffix(".keras")
    saved_path = path.with_name("saved.pkl")
    saved_path.write_bytes(saved)
    load(saved_path).model_.save(path)
    return path


def _hdf5(path, saved):
    with h5py.File(path, "w") as f:
        f["images"] = np.zeros((2, 4, 4))
    return path


def _npy(path, saved):
    np.save(path.with_suffix(".npy"), np.zeros(3))
    return path.with_suffix(".npy")


def _fits(path, saved):
    fits.PrimaryHDU(np.zeros((4, 4))).writeto(path)
    return path


def _gzip(path, saved):
    with gzip.open(path, "wb") as f:
        f.write(saved)
    return path


def _zip(path, saved):
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("notes.txt", "not a network")
    return path


def _binary(path, saved):
    path.write_bytes(bytes(range(7, 64)))
    return path


def _empty(path, saved):
    path.write_bytes(b"")
    return path


FOREIGN = {
    "text": (_text, r"a text file \(starting 'mag,r_eff'\)"),
    "utf8-text": (_utf8_text, "a text file .starting 'Sérsic fits"),
    "keras": (_keras, r"a bare Keras network \(.keras file; keras.saving.load_model reads it"),
    "hdf5": (_hdf5, "an HDF5 file"),
    "npy": (_npy, r"a NumPy .npy array"),
    "fits": (_fits, "a FITS file"),
    "gzip": (_gzip, "a gzip-compressed file"),
    "zip": (_zip, "a zip archive"),
    "binary": (_binary, r"an unknown binary format \(starting b'\\x07"),
    "empty": (_empty, r"empty \(0 bytes"),
}


@pytest.mark.parametrize("kind", FOREIGN)
def test_load_of_a_foreign_file(saved_bytes, tmp_path, kind):
    write, what = FOREIGN[kind]
    path = write(tmp_path / "file.pkl", saved_bytes)
    with pytest.raises(ValueError, match=f"cannot load .*: it is {what}.*not an astromorphnet "
                                         "estimator file .load expects a file written by"):
        load(path)


def test_load_of_a_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such file; load expects a file written"):
        load(tmp_path / "model.pkl")


def test_load_of_a_folder(tmp_path):
    with pytest.raises(IsADirectoryError, match="it is a folder; load expects a file written"):
        load(tmp_path)


_DAMAGED = "the astromorphnet estimator file is damaged"


def _cut(at):
    return lambda saved: saved[:at(saved)]


def _flip(at):
    def damage(saved):
        data = bytearray(saved)
        data[at(saved)] ^= 0xFF
        return bytes(data)
    return damage


@pytest.mark.parametrize("damage, message", [
    (_cut(lambda b: len(b) // 2), "holds .* bytes of data where save.. wrote"),
    (_cut(lambda b: len(b) - 1), "holds .* bytes of data where save.. wrote"),
    (lambda b: b + b"\0" * 10, "holds .* bytes of data where save.. wrote"),
    (_cut(lambda b: len(MAGIC) + 2), "its header is truncated or unreadable"),
    (_cut(lambda b: len(MAGIC) + 30), "its header is truncated or unreadable"),
    (_flip(lambda b: len(MAGIC)), "its header is truncated or unreadable"),
    (lambda b: b.replace(b'"payload_bytes"', b'"payload_bytez"', 1),
     "its header is truncated or unreadable"),
    (_flip(lambda b: len(b) // 2), "do not match the checksum"),
    (_flip(lambda b: len(b) - 1), "do not match the checksum"),
    (lambda b: b.replace(b"\r\n", b"\n"), "line endings were converted by a text-mode"),
    (lambda b: b.replace(b"\n", b"\r\n"), "line endings were converted by a text-mode"),
], ids=["half", "last-byte-missing", "bytes-appended", "in-length", "in-header",
        "length-flipped", "header-key-renamed", "flipped-mid-payload", "flipped-last-byte",
        "crlf-to-lf", "lf-to-crlf"])
def test_load_of_a_damaged_file(saved_bytes, tmp_path, damage, message):
    path = tmp_path / "model.pkl"
    path.write_bytes(damage(saved_bytes))
    with pytest.raises(ValueError, match=f"{_DAMAGED}.*{message}"):
        load(path)


def test_load_of_a_file_from_a_newer_format(tmp_path):
    path = _write_framed(tmp_path / "model.pkl", b"\x80\x05N.", format=99)
    with pytest.raises(ValueError, match="file format 99 .*reads format 1 or older: upgrade"):
        load(path)


@pytest.mark.parametrize("name", ["astromorphnet.estimators._gone.OldRegressor",
                                  "astromorphnet.estimators.NoSuchRegressor", "os.system"])
def test_load_of_a_class_this_version_lacks(tmp_path, name):
    path = _write_framed(tmp_path / "model.pkl", b"\x80\x05N.", **{"class": name})
    with pytest.raises(ValueError, match=f"holds a '{name}', which this astromorphnet"):
        load(path)


@pytest.mark.parametrize("saved, loader", [
    (lambda fitted: fitted, AdversarialDARegressor),
    (lambda fitted: fitted, TransferLearningRegressor),
    (lambda fitted: TransferLearningRegressor(), SersicCNNRegressor),
], ids=["sersic-as-dann", "sersic-as-transfer", "transfer-as-sersic"])
def test_load_of_another_estimator_class(fitted, tmp_path, saved, loader):
    estimator = saved(fitted)
    estimator.save(tmp_path / "model.pkl")
    with pytest.raises(TypeError, match=f"holds a {type(estimator).__name__}, not a "
                                        f"{loader.__name__}"):
        loader.load(tmp_path / "model.pkl")


def test_class_is_checked_before_unpickling(tmp_path):
    # The payload would fail to unpickle: the header's class is refused first.
    path = _write_framed(tmp_path / "model.pkl", b"\x80\x05garbage")
    with pytest.raises(TypeError, match="holds a SersicCNNRegressor, not a AdversarialDA"):
        AdversarialDARegressor.load(path)


def test_unpickling_failure_names_the_differing_versions(tmp_path):
    versions = {**running_versions(), "keras": "2.0.0"}
    path = _write_framed(tmp_path / "model.pkl", b"\x80\x05garbage", versions=versions)
    with pytest.raises(ValueError, match=r"unpickling failed with .*saved with keras 2.0.0 "
                                         rf"\(running {running_versions()['keras']}\)"):
        load(path)


def test_unpickling_failure_with_unreadable_versions(tmp_path):
    path = _write_framed(tmp_path / "model.pkl", b"\x80\x05garbage", versions="2.0")
    with pytest.raises(ValueError, match="unpickling failed with .*truncated or corrupted"):
        load(path)


def test_unpickling_failure_with_matching_versions(tmp_path):
    path = _write_framed(tmp_path / "model.pkl", b"\x80\x05garbage")
    with pytest.raises(ValueError, match="unpickling failed with .*versions match: please"):
        load(path)


# -- bare pickles: files of earlier versions, pickle.dump and joblib.dump -----------
@pytest.mark.parametrize("obj", [{"not": "an estimator"}, StandardScaler(), [1, 2]],
                         ids=["dict", "StandardScaler", "list"])
def test_bare_pickle_of_something_else(tmp_path, obj):
    path = tmp_path / "other.pkl"
    path.write_bytes(pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL))
    with pytest.raises(TypeError, match=f"holds a {type(obj).__name__}, not a "
                                        "SersicCNNRegressor; load expects"):
        SersicCNNRegressor.load(path)


def _legacy_bytes(fitted, monkeypatch):
    """A fitted estimator as the save() of astromorphnet <= 0.1.0.dev0 wrote it."""
    def without_versions(estimator):
        state = estimator_state(estimator)
        del state["_saved_versions"]
        return state

    estimator_state = _persistence.estimator_state
    with monkeypatch.context() as patch:
        patch.setattr(_persistence, "estimator_state", without_versions)
        return pickle.dumps(fitted, protocol=pickle.HIGHEST_PROTOCOL)


def test_file_written_before_versions_were_recorded(fitted, tmp_path, monkeypatch, stamps,
                                                    expected):
    path = tmp_path / "old.pkl"
    path.write_bytes(_legacy_bytes(fitted, monkeypatch))
    with pytest.warns(SavedVersionWarning, match="did not record package versions"):
        restored = load(path)
    assert restored.saved_versions_ is None
    np.testing.assert_array_equal(_predict(restored, stamps), expected)


def test_truncated_bare_pickle(fitted, tmp_path, monkeypatch):
    path = tmp_path / "old.pkl"
    path.write_bytes(_legacy_bytes(fitted, monkeypatch)[:5000])
    with pytest.raises(ValueError, match="unpickling failed with .*truncated or corrupted"):
        load(path)


def test_joblib_dump_loads(fitted, tmp_path, stamps, expected):
    joblib.dump(fitted, tmp_path / "model.joblib")
    np.testing.assert_array_equal(_predict(load(tmp_path / "model.joblib"), stamps), expected)


# -- defect 16: versions recorded, a mismatch warns -------------------------------
def _save_with(estimator, path, monkeypatch, **versions):
    with monkeypatch.context() as patch:
        patch.setattr(_persistence, "running_versions",
                      lambda: {**running_versions(), **versions})
        estimator.save(path)
    return path


@pytest.mark.parametrize("package", ["astromorphnet", "keras", "tensorflow", "scikit-learn",
                                     "numpy"])
def test_version_mismatch_warns(fitted, tmp_path, monkeypatch, package):
    path = _save_with(fitted, tmp_path / "model.pkl", monkeypatch, **{package: "0.0.1"})
    running = running_versions()[package]
    with pytest.warns(SavedVersionWarning,
                      match=f"{package} saved 0.0.1, running {running}") as record:
        restored = load(path)
    assert record[0].message.mismatches == {package: ("0.0.1", running)}
    assert restored.saved_versions_[package] == "0.0.1"
    _assert_same_fit(restored, fitted)


def test_package_missing_when_saved_counts_as_a_mismatch(fitted, tmp_path, monkeypatch):
    path = _save_with(fitted, tmp_path / "model.pkl", monkeypatch, tensorflow=None)
    with pytest.warns(SavedVersionWarning, match="tensorflow saved None, running"):
        load(path)


def test_version_mismatch_warns_through_pickle_too(fitted, monkeypatch):
    with monkeypatch.context() as patch:
        patch.setattr(_persistence, "running_versions",
                      lambda: {**running_versions(), "keras": "0.0.1"})
        blob = pickle.dumps(fitted)
    with pytest.warns(SavedVersionWarning, match="keras saved 0.0.1"):
        pickle.loads(blob)


def test_version_mismatch_as_error_stays_a_warning_class(fitted, tmp_path, monkeypatch):
    path = _save_with(fitted, tmp_path / "model.pkl", monkeypatch, keras="0.0.1")
    with warnings.catch_warnings():
        warnings.simplefilter("error", SavedVersionWarning)
        with pytest.raises(SavedVersionWarning, match="keras saved 0.0.1"):
            load(path)


def test_matching_versions_do_not_warn(good_file):
    with warnings.catch_warnings():
        warnings.simplefilter("error", SavedVersionWarning)
        load(good_file)


def test_resaving_records_the_running_versions(fitted, tmp_path, monkeypatch):
    path = _save_with(fitted, tmp_path / "model.pkl", monkeypatch, keras="0.0.1")
    with pytest.warns(SavedVersionWarning):
        restored = load(path)
    restored.save(path)
    with warnings.catch_warnings():
        warnings.simplefilter("error", SavedVersionWarning)
        assert load(path).saved_versions_ == running_versions()


def test_header_records_class_and_versions(good_file):
    data = good_file.read_bytes()
    assert data.startswith(MAGIC)
    length = int.from_bytes(data[len(MAGIC):len(MAGIC) + 4], "big")
    header = json.loads(data[len(MAGIC) + 4:len(MAGIC) + 4 + length])
    assert header["class"] == "astromorphnet.estimators._sersic.SersicCNNRegressor"
    assert header["versions"] == running_versions()


def test_pickling_is_deterministic_across_time(fitted):
    # Keras stamps each saved network with the time; one estimator must give
    # one byte string (and one joblib.hash), whenever it is pickled.
    first = pickle.dumps(fitted)
    time.sleep(1.1)
    assert pickle.dumps(fitted) == first
