"""Simulations under bad input and faults: clear errors, no orphan workers, no lost work."""

import os
import signal
import subprocess
import sys
import textwrap
import time

import galsim
import h5py
import numpy as np
import pytest
from astropy.table import QTable

from astromorphnet._parallel import ordered_map
from astromorphnet.simulation import (CCDNoise, CorrelatedNoise, GaussianNoise, Realism,
                                      SurveyConfig, check_truth, draw_parameters,
                                      load_dataset, open_dataset, simulate_galaxies,
                                      simulate_real_like, simulate_to_hdf5)

#: Small, quickly drawn galaxies for 16-pixel stamps.  (Not imported from
#: conftest: worker processes import this module, and conftest imports Keras.)
FAST_RANGES = {"mag": (17.0, 23.0), "r_eff": (1.5, 4.0), "sersic_n": (0.5, 2.5)}
TINY = dict(ranges=FAST_RANGES, stamp_size=16)


def _truth(**changes):
    columns = {"mag": [20.0], "r_eff": [3.0], "sersic_n": [1.0], "ellipticity": [0.2]}
    return QTable({**columns, **changes})


def _survey(**changes):
    params = dict(pixel_scale=0.1, zeropoint=25.0, psf=galsim.Gaussian(fwhm=0.3),
                  noise=None, stamp_size=16)
    return SurveyConfig("test", **{**params, **changes})


# --- bad input: each call fails at once, naming the value and what is accepted ---------

@pytest.mark.parametrize("call, match", [
    # draw_parameters: the count
    (lambda: draw_parameters(2.5), "n must be an integer >= 0; got 2.5"),
    (lambda: draw_parameters(-1), "n must be an integer >= 0; got -1"),
    (lambda: draw_parameters(True), "n must be an integer >= 0; got True"),
    (lambda: draw_parameters("3"), "n must be an integer >= 0; got '3'"),
    # draw_parameters: each range names its parameter and the accepted form
    (lambda: draw_parameters(3, {"mag": (16, np.inf)}),
     r"mag range must be \(low, high\) or \(low, high, 'log'\) with finite.*not finite"),
    (lambda: draw_parameters(3, {"mag": (-np.inf, 27)}), "mag range .* not finite"),
    (lambda: draw_parameters(3, {"r_eff": (np.nan, 3)}), "r_eff range .* not finite"),
    (lambda: draw_parameters(3, {"r_eff": (1, np.inf, "log")}), "r_eff range .* not finite"),
    (lambda: draw_parameters(3, {"mag": (27, 16)}), r"mag range .*reversed \(low > high\)"),
    (lambda: draw_parameters(3, {"sersic_n": ()}), r"sersic_n range must be \(low, high\)"),
    (lambda: draw_parameters(3, {"sersic_n": (1,)}), r"sersic_n range must be .*got \(1,\)"),
    (lambda: draw_parameters(3, {"ellipticity": (0, 0.1, 0.2, 0.3)}),
     r"ellipticity range must be \(low, high\)"),
    (lambda: draw_parameters(3, {"mag": 20}), r"mag range must be .*; got 20$"),
    (lambda: draw_parameters(3, {"mag": "16-27"}), "mag range must be .*; got '16-27'"),
    (lambda: draw_parameters(3, {"mag": ("16", "27")}), "mag range .* not finite numbers"),
    (lambda: draw_parameters(3, {"r_eff": (1, 4, None)}), r"r_eff range must be \(low"),
    (lambda: draw_parameters(3, [("mag", (16, 27))]), r"ranges must be a dict \{name:"),
    # simulate_galaxies: the count, and n against truth
    (lambda: simulate_galaxies(2.5, **TINY), r"n \(the number of galaxies\) must be an "
                                             "integer >= 1; got 2.5"),
    (lambda: simulate_galaxies(-3, **TINY), "must be an integer >= 1; got -3"),
    (lambda: simulate_galaxies(True, **TINY), "must be an integer >= 1; got True"),
    (lambda: simulate_galaxies("4", **TINY), "must be an integer >= 1; got '4'"),
    (lambda: simulate_galaxies(**TINY), "pass n, a number of galaxies, or truth"),
    (lambda: simulate_galaxies(1, truth=_truth(), stamp_size=16),
     r"pass n or truth, not both \(truth has 1 rows; n=1\)"),
    (lambda: simulate_galaxies(truth=_truth(), **TINY), "ranges apply to drawn parameters"),
    (lambda: simulate_real_like(truth=_truth(), ranges={"mag": (20, 21)}, stamp_size=16),
     "ranges apply to drawn parameters"),
    # simulate_galaxies: workers, seeds, survey, stamp size
    (lambda: simulate_galaxies(2, n_jobs=0, **TINY), "n_jobs=0 runs no worker"),
    (lambda: simulate_galaxies(2, n_jobs=1.5, **TINY), "n_jobs must be an integer .*got 1.5"),
    (lambda: simulate_galaxies(2, n_jobs="2", **TINY), "n_jobs must be an integer .*got '2'"),
    (lambda: simulate_galaxies(2, n_jobs=True, **TINY), "n_jobs must be an integer .*True"),
    (lambda: simulate_galaxies(2, random_state=2.5, **TINY),
     "random_state must be an integer >= 0, a numpy RandomState or Generator, or None; "
     "got 2.5"),
    (lambda: simulate_galaxies(2, random_state=-1, **TINY), "random_state must be .*got -1"),
    (lambda: simulate_galaxies(2, random_state="0", **TINY), "random_state must be .*'0'"),
    (lambda: simulate_galaxies(2, "HST", **TINY), r"unknown survey preset 'HST'; choose "
                                                  r"among \['CANDELS_F160W'"),
    (lambda: simulate_galaxies(2, "candels_f160w", **TINY), "unknown survey preset"),
    (lambda: simulate_galaxies(2, ranges=FAST_RANGES, stamp_size=0),
     "stamp_size must be an integer >= 8; got 0"),
    (lambda: simulate_galaxies(2, ranges=FAST_RANGES, stamp_size=7), "stamp_size .*got 7"),
    (lambda: simulate_galaxies(2, ranges=FAST_RANGES, stamp_size=32.5), "stamp_size .*32.5"),
    (lambda: simulate_galaxies(2, ranges=FAST_RANGES, stamp_size="64"), "stamp_size .*'64'"),
    (lambda: simulate_galaxies(2, ranges=FAST_RANGES, stamp_size=np.inf), "stamp_size .*inf"),
    (lambda: simulate_galaxies(2, realism={"neighbours": 1}, **TINY),
     r"realism must be a Realism or None; got \{'neighbours': 1\}"),
    # survey configurations
    (lambda: _survey(zeropoint=np.inf), "zeropoint must be a finite number; got inf"),
    (lambda: _survey(zeropoint=np.nan), "zeropoint must be a finite number; got nan"),
    (lambda: _survey(pixel_scale=np.inf), "pixel_scale must be a finite number > 0"),
    (lambda: _survey(pixel_scale=-0.1), "pixel_scale must be a finite number > 0"),
    (lambda: _survey(oversampling=0), "oversampling must be an integer >= 1; got 0"),
    (lambda: _survey(oversampling=2.5), "oversampling must be an integer >= 1; got 2.5"),
    (lambda: _survey(noise=0.01), "noise must be a GaussianNoise, CCDNoise or "
                                  r"CorrelatedNoise \(or None\); got 0.01"),
    (lambda: simulate_galaxies(1, _survey(psf=np.zeros((5, 5))), random_state=0),
     "a PSF image must hold finite values with a positive sum"),
    (lambda: simulate_galaxies(1, _survey(psf=np.full((5, 5), np.nan)), random_state=0),
     "a PSF image must hold finite values"),
    (lambda: simulate_galaxies(1, _survey(psf=None), random_state=0),
     "the survey has no PSF"),
    # noise models: negative, infinite or non-numeric
    (lambda: GaussianNoise(-0.1), "noise sigma must be a finite number >= 0; got -0.1"),
    (lambda: GaussianNoise(np.inf), "noise sigma must be a finite number >= 0; got inf"),
    (lambda: GaussianNoise("0.1"), "noise sigma must be a finite number >= 0; got '0.1'"),
    (lambda: CCDNoise(sky_level=np.nan, exposure_time=10), "CCDNoise sky_level must be a"),
    (lambda: CCDNoise(sky_level=1, exposure_time=10, read_noise=-1),
     "CCDNoise read_noise must be a finite number >= 0; got -1"),
    (lambda: CCDNoise(sky_level=1, exposure_time=np.inf), "CCDNoise exposure_time must be"),
    (lambda: CorrelatedNoise(variance=np.inf), "variance must be a finite number > 0"),
    (lambda: CorrelatedNoise(pixel_scale=0), "pixel_scale must be a finite number > 0"),
    # realism
    (lambda: Realism(n_knots=2.5), "n_knots must be an integer >= 0; got 2.5"),
    (lambda: Realism(neighbours=np.inf), "neighbours must be a finite number >= 0"),
    (lambda: Realism(sky_gradient=-1), "sky_gradient must be a finite number >= 0; got -1"),
    (lambda: Realism(cosmic_rays=np.nan), "cosmic_rays must be a finite number >= 0"),
    (lambda: Realism(bulge_axis_ratio="1"), r"bulge_axis_ratio must lie in \(0, 1\]"),
    # truth tables: non-finite optional columns (drawn as NaN images before)
    (lambda: check_truth(_truth(pa=[np.nan])),
     r"pa values must be finite numbers; row\(s\) \[0\] hold \[nan\]"),
    (lambda: check_truth(_truth(dx=[np.inf])), "dx values must be finite numbers"),
    # a galaxy so bright that float32 overflows: no silent inf/NaN image
    pytest.param(lambda: simulate_galaxies(1, ranges={**FAST_RANGES, "mag": (-200, -150)},
                                           stamp_size=16, random_state=0),
                 "galaxy 0 .*mag=-1.* drew non-finite pixels: check its magnitude against",
                 marks=pytest.mark.filterwarnings("ignore::RuntimeWarning")),
])
def test_bad_simulation_input_fails_clearly(call, match):
    with pytest.raises(ValueError, match=match):
        call()


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_worker_failure_reaches_the_caller():
    # Two tasks: the error is raised in a worker process and must come back
    # with its type and message.
    bright = {**FAST_RANGES, "mag": (-200, -150)}
    with pytest.raises(ValueError, match="drew non-finite pixels"):
        simulate_galaxies(40, ranges=bright, stamp_size=16, n_jobs=2, random_state=0)


def test_workers_use_one_galsim_thread():
    threads = list(ordered_map(_galsim_threads, range(4), n_jobs=2))
    assert threads == [1, 1, 1, 1]


def _galsim_threads(_):
    return galsim.utilities.get_omp_threads()


def test_generator_seed_is_accepted_and_reproducible():
    one, _ = simulate_galaxies(2, random_state=np.random.default_rng(3), **TINY)
    two, _ = simulate_galaxies(2, random_state=np.random.default_rng(3), **TINY)
    np.testing.assert_array_equal(one, two)


@pytest.mark.parametrize("size, centre", [(17, 8.0), (16, 7.5)])
def test_odd_stamps_centre_on_a_pixel_even_ones_between_four(size, centre):
    images, _ = simulate_galaxies(truth=_truth(sersic_n=[0.5], dx=[0.0], dy=[0.0]),
                                  survey=_survey(stamp_size=size), random_state=0)
    yy, xx = np.indices(images[0].shape)
    total = images[0].sum()
    assert (xx * images[0]).sum() / total == pytest.approx(centre, abs=0.01)
    assert (yy * images[0]).sum() / total == pytest.approx(centre, abs=0.01)


# --- simulate_to_hdf5: destinations, foreign files, resume --------------------------------

@pytest.mark.parametrize("kwargs, error, match", [
    (dict(chunk_size=0), ValueError, "chunk_size must be an integer >= 1; got 0"),
    (dict(chunk_size=2.5), ValueError, "chunk_size must be an integer >= 1; got 2.5"),
    (dict(n_jobs=0), ValueError, "n_jobs=0 runs no worker"),
    (dict(random_state=2.5), ValueError, "random_state must be an integer >= 0"),
])
def test_hdf5_bad_arguments_fail_before_any_file(tmp_path, kwargs, error, match):
    with pytest.raises(error, match=match):
        simulate_to_hdf5(tmp_path / "sims.h5", 4, **{**TINY, "random_state": 0, **kwargs})
    assert list(tmp_path.iterdir()) == []


def test_hdf5_into_a_missing_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="folder .*missing does not exist"):
        simulate_to_hdf5(tmp_path / "missing" / "sims.h5", 4, random_state=0, **TINY)


def test_hdf5_onto_a_folder(tmp_path):
    with pytest.raises(IsADirectoryError, match="is a folder; pass the path of the HDF5"):
        simulate_to_hdf5(tmp_path, 4, random_state=0, overwrite=True, **TINY)


def _foreign_hdf5(path):
    with h5py.File(path, "w") as f:
        f["spectra"] = np.arange(5.0)


@pytest.mark.parametrize("write", [lambda p: p.write_text("my notes"), _foreign_hdf5],
                         ids=["text file", "foreign HDF5"])
def test_overwrite_never_replaces_a_file_that_is_not_a_simulated_set(tmp_path, write):
    path = tmp_path / "data.h5"
    write(path)
    before = path.read_bytes()
    with pytest.raises(FileExistsError, match="is not an astromorphnet simulated set: "
                                              "overwrite=True replaces only those"):
        simulate_to_hdf5(path, 4, random_state=0, overwrite=True, **TINY)
    assert path.read_bytes() == before and not (tmp_path / "data.h5.partial").exists()


@pytest.mark.parametrize("with_images", [False, True], ids=["no images", "with images"])
def test_a_foreign_partial_file_is_never_overwritten(tmp_path, with_images):
    # Before, a foreign HDF5 file without an "images" dataset was silently
    # taken for a run killed during setup, and overwritten.
    partial = tmp_path / "sims.h5.partial"
    _foreign_hdf5(partial)
    if with_images:
        with h5py.File(partial, "a") as f:
            f["images"] = np.zeros((2, 4, 4))
    before = partial.read_bytes()
    with pytest.raises(ValueError, match="is not an interrupted astromorphnet simulation"):
        simulate_to_hdf5(tmp_path / "sims.h5", 4, random_state=0, **TINY)
    assert partial.read_bytes() == before


@pytest.fixture
def interrupted(tmp_path, monkeypatch):
    """A ``simulate_to_hdf5`` run of 20 galaxies stopped after its first block of 8."""
    from astromorphnet.simulation import _hdf5

    path = tmp_path / "sims.h5"
    render = _hdf5._render_blocks

    def first_block_only(*args, index_offset, **kw):
        if index_offset > 0:
            raise KeyboardInterrupt
        return render(*args, index_offset=index_offset, **kw)

    with monkeypatch.context() as patch:
        patch.setattr(_hdf5, "_render_blocks", first_block_only)
        with pytest.raises(KeyboardInterrupt):
            simulate_to_hdf5(path, 20, chunk_size=8, random_state=4, **TINY)
    return path


@pytest.mark.parametrize("changed", [
    dict(stamp_size=24), dict(survey="GROUND_R"), dict(realism=Realism(cosmic_rays=1.0)),
    dict(random_state=5), dict(ranges={**FAST_RANGES, "sersic_n": (1.0, 2.0)}),
], ids=["stamp size", "survey", "realism", "seed", "ranges"])
def test_resume_with_another_configuration_is_refused(interrupted, changed):
    kwargs = {**TINY, "chunk_size": 8, "random_state": 4, **changed}
    with pytest.raises(ValueError, match="interrupted run of a different simulation"):
        simulate_to_hdf5(interrupted, 20, **kwargs)
    with h5py.File(f"{interrupted}.partial", "r") as f:  # left as it was
        assert f.attrs["n_done"] == 8


def test_resume_with_other_chunks_is_identical(interrupted):
    simulate_to_hdf5(interrupted, 20, chunk_size=5, random_state=4, **TINY)
    expected, _ = simulate_galaxies(20, random_state=4, **TINY)
    np.testing.assert_array_equal(load_dataset(interrupted)[0], expected)


def test_partial_file_held_open_by_another_process(interrupted):
    partial = f"{interrupted}.partial"
    holder = subprocess.Popen(
        [sys.executable, "-c", f"import h5py, sys, time\nf = h5py.File({partial!r}, 'r+')\n"
                               "print('open', flush=True)\ntime.sleep(60)"],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "open"
        with pytest.raises(BlockingIOError, match="is open in another process .*then repeat "
                                                  "the call to resume"):
            simulate_to_hdf5(interrupted, 20, chunk_size=8, random_state=4, **TINY)
    finally:
        holder.kill()
        holder.wait()
    simulate_to_hdf5(interrupted, 20, chunk_size=8, random_state=4, **TINY)
    assert len(load_dataset(interrupted)[0]) == 20


def test_killed_after_the_last_block_finishes_on_the_next_call(interrupted):
    partial = f"{interrupted}.partial"
    simulate_to_hdf5(interrupted, 20, chunk_size=8, random_state=4, **TINY)
    complete = load_dataset(interrupted)[0]
    # As if killed after the last block, before the rename.
    os.replace(interrupted, partial)
    with h5py.File(partial, "r+") as f:
        f.attrs.modify("complete", False)
    simulate_to_hdf5(interrupted, 20, chunk_size=8, random_state=4, **TINY)
    np.testing.assert_array_equal(load_dataset(interrupted)[0], complete)


# --- SimulatedDataset: closed, or not a complete set ---------------------------------------

@pytest.fixture(scope="module")
def small_set(tmp_path_factory):
    path = tmp_path_factory.mktemp("set") / "sims.h5"
    return simulate_to_hdf5(path, 4, random_state=1, **TINY)


@pytest.mark.parametrize("use", [lambda ds: ds.images[:2], lambda ds: ds.images.shape,
                                 lambda ds: ds.as_stamps()],
                         ids=["read images", "images shape", "as_stamps"])
def test_closed_dataset_raises_a_clear_error(small_set, use):
    ds = open_dataset(small_set)
    ds.close()
    with pytest.raises(ValueError, match="sims.h5 is closed \\(read after close\\(\\) or "
                                         "outside its with block\\): open it again"):
        use(ds)


def test_dataset_used_outside_its_with_block(small_set):
    with open_dataset(small_set) as ds:
        pass
    with pytest.raises(ValueError, match="is closed"):
        ds.images[0]
    # What is held in memory stays available, and says the set is closed.
    assert len(ds) == 4 and len(ds.truth) == 4 and repr(ds).endswith(", closed)")


def test_open_a_text_file_as_a_dataset(tmp_path):
    path = tmp_path / "notes.h5"
    path.write_text("not HDF5")
    with pytest.raises(ValueError, match="not a complete astromorphnet simulated set \\(not "
                                         "an HDF5 file\\)"):
        open_dataset(path)


def test_open_an_interrupted_run_directly(interrupted):
    with pytest.raises(ValueError, match="an interrupted run; repeat its simulate_to_hdf5"):
        open_dataset(f"{interrupted}.partial")


# --- killed runs: no worker outlives its parent, and the run resumes bit for bit ----------

_KILL_RUN = dict(n=192, chunk_size=64, random_state=3)


def _children(pid):
    """Live (not zombie) child processes of ``pid``, from /proc."""
    children = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    state, ppid = f.read().rsplit(")", 1)[1].split()[:2]
            except OSError:  # ended meanwhile
                continue
            if int(ppid) == pid and state != "Z":
                children.append(int(entry))
    return children


def _alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.fixture(scope="module")
def uninterrupted():
    return simulate_galaxies(**{k: v for k, v in _KILL_RUN.items() if k != "chunk_size"},
                             **TINY)


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="reads processes from /proc")
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
def test_killed_run_leaves_no_worker_and_resumes_bit_for_bit(tmp_path, sig, uninterrupted):
    path = tmp_path / "sims.h5"
    partial = tmp_path / "sims.h5.partial"
    # Each task sleeps 0.3 s, so that the kill lands between blocks even on
    # a fast machine; the function travels to the workers by value.
    code = textwrap.dedent(f"""
        import time
        from astromorphnet.simulation import _simulate, simulate_to_hdf5
        render = _simulate._render_task

        def slow(*args):
            time.sleep(0.3)
            return render(*args)

        _simulate._render_task = slow
        simulate_to_hdf5({str(path)!r}, n_jobs=2, ranges={FAST_RANGES!r}, stamp_size=16,
                         **{_KILL_RUN!r})
    """)
    run = subprocess.Popen([sys.executable, "-c", code], stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 180
        while _blocks_done(partial) < 1 or len(_children(run.pid)) < 2:
            assert run.poll() is None, run.stderr.read().decode()[-2000:]
            assert time.monotonic() < deadline, "no block written in 180 s"
            time.sleep(0.05)
        workers = _children(run.pid)
        run.send_signal(sig)
        run.wait()
    finally:
        run.kill()
        run.stderr.close()
    deadline = time.monotonic() + 10
    while any(map(_alive, workers)) and time.monotonic() < deadline:
        time.sleep(0.1)
    survivors = [pid for pid in workers if _alive(pid)]
    for pid in survivors:  # do not leave them to the rest of the session
        os.kill(pid, signal.SIGKILL)
    assert survivors == []
    assert not path.exists()
    with h5py.File(partial, "r") as f:  # readable, lock released, a block boundary
        done = int(f.attrs["n_done"])
    assert 0 < done < _KILL_RUN["n"] and done % _KILL_RUN["chunk_size"] == 0
    simulate_to_hdf5(path, n_jobs=1, **{**_KILL_RUN, "chunk_size": 50}, **TINY)
    images, truth = load_dataset(path)
    np.testing.assert_array_equal(images, uninterrupted[0])
    for name in uninterrupted[1].colnames:
        np.testing.assert_array_equal(truth[name], uninterrupted[1][name])


def _blocks_done(partial):
    """Blocks written so far, read without taking the writer's lock (0 if unreadable)."""
    try:
        with h5py.File(partial, "r", locking=False) as f:
            return int(f.attrs["n_done"]) // _KILL_RUN["chunk_size"]
    except (OSError, KeyError):
        return 0
