"""The command line (issue 11, item 12): bad arguments end in one clear line
before any work, and progress output stays readable in a log file."""

import io
import re
import subprocess
import sys
import types

import pytest
from astropy.table import QTable

import astromorphnet
from astromorphnet import __main__ as cli
from astromorphnet import demo
from astromorphnet._progress import interactive, keras_verbose

#: Control bytes of a redrawn progress bar: carriage return, backspace, ANSI escape.
CONTROL = (b"\r", b"\x08", b"\x1b[")
#: The smallest demo the settings accept, one or two epochs per network.
TINY = ["--n-source", "8", "--n-target", "6", "--stamp-size", "16", "--max-epochs", "2",
        "--fine-tune-epochs", "1", "--dann-max-epochs", "1", "--no-plots"]


@pytest.fixture
def runs(monkeypatch):
    """Record `run_demo` calls instead of running the demo."""
    calls = []

    def run_demo(scale, **settings):
        calls.append((scale, settings))
        table = QTable({"model": ["sim-only"], "mag": [0.5]}, meta={"n_galaxies": 2})
        return {"r2_target": table, "r2_source": table}

    monkeypatch.setattr(demo, "run_demo", run_demo)
    return calls


def fails(argv, capsys):
    """Run the command; return its one line of standard error (exit status 2)."""
    with pytest.raises(SystemExit) as stop:
        cli.main(argv)
    assert stop.value.code == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("astromorphnet"), captured.err
    assert "Traceback" not in captured.err
    return lines[0]


@pytest.mark.parametrize("argv, message", [
    (["demo", "--n-source", "0"], r"--n-source: expected an integer >= 1; got '0'"),
    (["demo", "--n-target", "-5"], r"--n-target: expected an integer >= 1; got '-5'"),
    (["demo", "--n-source", "abc"], r"--n-source: expected an integer >= 1; got 'abc'"),
    (["demo", "--n-source", "2.5"], r"got '2\.5'"),
    (["demo", "--n-source", "1e3"], r"got '1e3'"),
    (["demo", "--n-source", ""], r"got ''"),
    (["demo", "--n-source"], r"--n-source: expected one argument"),
    (["demo", "--n-source", "5"],
     r"n_source=5 leaves 4 source galaxies for training and 1 for testing "
     r"\(test_fraction=0\.2\); the demo needs at least 4 and 2: give n_source >= 8"),
    (["demo", "--n-target", "5"], r"n_target=5 leaves 3 target .* give n_target >= 6"),
    (["demo", "--stamp-size", "8"], r"--stamp-size: expected an integer >= 16; got '8'"),
    (["demo", "--stamp-size", "0"], r"--stamp-size: expected an integer >= 16"),
    (["demo", "--max-epochs", "0"], r"--max-epochs: expected an integer >= 1; got '0'"),
    (["demo", "--patience", "-1"], r"--patience: expected an integer >= 0; got '-1'"),
    (["demo", "--fine-tune-epochs", "0"], r"--fine-tune-epochs: expected an integer >= 1"),
    (["demo", "--dann-n-source", "3"], r"--dann-n-source: expected an integer >= 4; got '3'"),
    (["demo", "--dann-max-epochs", "0"], r"--dann-max-epochs: expected an integer >= 1"),
    (["demo", "--dann-patience", "-2"], r"--dann-patience: expected an integer >= 0"),
    (["demo", "--seed", "-1"], r"--seed: expected an integer in \[0, 4294967294\]; got '-1'"),
    (["demo", "--seed", "4294967295"], r"--seed: expected an integer in \[0, 4294967294\]"),
    (["demo", "--seed", "x"], r"--seed: expected an integer"),
    (["demo", "--threads", "0"], r"--threads: expected an integer >= 1; got '0'"),
    (["demo", "--scale", "huge"], r"--scale: invalid choice: 'huge'"),
    (["demo", "--n-galaxies", "10"], r"unrecognized arguments: --n-galaxies 10"),
    (["predict"], r"invalid choice: 'predict'"),
    ([], r"the following arguments are required: command"),
])
def test_bad_argument_one_line_exit_2(argv, message, capsys, runs):
    assert re.search(message, fails(argv, capsys))
    assert runs == []


def test_output_dir_is_a_file(tmp_path, capsys, runs):
    path = tmp_path / "taken"
    path.write_text("")
    line = fails(["demo", "--output-dir", str(path)], capsys)
    assert f"output_dir {str(path)!r} exists and is not a folder" in line
    assert runs == []


def test_output_dir_below_a_file(tmp_path, capsys, runs):
    path = tmp_path / "taken"
    path.write_text("")
    line = fails(["demo", "--output-dir", str(path / "out")], capsys)
    assert f"cannot be created: {str(path)!r} is a file" in line


def test_plots_without_matplotlib(monkeypatch, capsys, runs):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib fails
    assert "plots need matplotlib" in fails(["demo"], capsys)
    assert cli.main(["demo", "--no-plots"]) == 0  # the way out the message gives
    assert runs[0][1]["plots"] is False


@pytest.mark.parametrize("argv, expected", [
    (["--help"], "demo"),
    (["demo", "--help"], "--quiet"),
    (["--version"], f"astromorphnet {astromorphnet.__version__}"),
])
def test_help_and_version_exit_0(argv, expected, capsys, runs):
    with pytest.raises(SystemExit) as stop:
        cli.main(argv)
    assert stop.value.code == 0
    assert expected in capsys.readouterr().out
    assert runs == []


def test_arguments_reach_the_demo(capsys, runs):
    assert cli.main(["demo", "--n-source", "8", "--seed", "3", "--threads", "2", "--quiet",
                     "--no-plots", "--output-dir", "out"]) == 0
    scale, settings = runs[0]
    assert scale == "default"
    assert settings == dict(output_dir="out", plots=False, random_state=3, verbose=0,
                            threads=2, n_source=8)
    # --quiet: the demo is silent, the command prints the results itself.
    assert "R² on the real-like TARGET test set (2 galaxies):" in capsys.readouterr().out


def test_not_quiet_leaves_the_results_to_the_demo(capsys, runs):
    assert cli.main(["demo", "--no-plots"]) == 0
    assert runs[0][1]["verbose"] == 1
    assert capsys.readouterr().out == ""  # run_demo prints them (here a stand-in)


def test_interrupt_ends_with_one_line(monkeypatch, capsys):
    def run_demo(scale, **settings):
        raise KeyboardInterrupt

    monkeypatch.setattr(demo, "run_demo", run_demo)
    assert cli.main(["demo", "--no-plots"]) == 130
    assert capsys.readouterr().err == "astromorphnet demo: interrupted\n"


# -- run_demo checks every setting before any work ---------------------------
@pytest.mark.parametrize("settings, message", [
    (dict(scale="huge"), r"scale must be one of \['default', 'thesis'\]; got 'huge'"),
    (dict(n_galaxies=10), r"unknown demo settings \['n_galaxies'\]"),
    (dict(n_source=True), r"n_source must be an integer >= 1; got True"),
    (dict(n_source=8.0), r"n_source must be an integer >= 1; got 8\.0"),
    (dict(dann_n_source=0), r"dann_n_source must be an integer >= 4; got 0"),
    (dict(test_fraction=0), r"test_fraction must be a number in \(0, 1\); got 0"),
    (dict(test_fraction=1.5), r"test_fraction must be a number in \(0, 1\); got 1\.5"),
    (dict(target_test_fraction="0.4"), r"target_test_fraction must be a number in \(0, 1\)"),
    (dict(test_fraction=0.01, n_source=100),
     r"n_source=100 leaves 99 source .*\(test_fraction=0\.01\).* give n_source >= 150"),
    (dict(target_test_fraction=0.9, n_target=20), r"leaves 2 target .* give n_target >= 36"),
    (dict(random_state=2.5), r"random_state must be an integer in \[0, 4294967294\]; got 2\.5"),
    (dict(random_state=None), r"random_state must be an integer in .*; got None"),
    (dict(verbose=-1), r"verbose must be an integer >= 0; got -1"),
    (dict(threads=1.5), r"threads must be an integer >= 1; got 1\.5"),
    (dict(plots="yes"), r"plots must be True or False; got 'yes'"),
    (dict(randomised=1), r"randomised must be True or False; got 1"),
    (dict(output_dir=3), r"output_dir must be a path; got 3"),
    (dict(source_ranges={"sersic_n": (0.1, 9)}), r"source_ranges: sersic_n range"),
    (dict(target_ranges={"r_eff": (-1, 3)}), r"target_ranges: r_eff range .* must be positive"),
    (dict(learning_rate=-1), r"'learning_rate' parameter of SersicCNNRegressor"),
    (dict(fine_tune_learning_rate=0), r"'learning_rate' parameter of TransferLearningRegressor"),
    (dict(batch_size=0), r"'batch_size' parameter"),
    (dict(architecture="huge"), r"architecture must be one of \['light', 'resnet', 'thesis'\]"),
])
def test_run_demo_checks_settings_first(settings, message, monkeypatch):
    def simulate(*args, **kwargs):
        raise AssertionError("simulating despite a bad setting")

    monkeypatch.setattr("astromorphnet.simulation.simulate_galaxies", simulate)
    with pytest.raises(ValueError, match=message):
        demo.run_demo(**{"plots": False, **settings})


def test_least_accepted_counts():
    # The bounds the messages give are the least accepted values.
    assert demo.check_settings(n_source=8, n_target=6, dann_n_source=4, plots=False)
    for count in ("n_source", "n_target"):
        with pytest.raises(ValueError, match=f"give {count} >= "):
            demo.check_settings(**{"n_source": 8, "n_target": 6, count: 5}, plots=False)


def test_threads_after_tensorflow_started():
    import tensorflow as tf

    tf.constant(1.0) + 1  # starts TensorFlow's runtime
    current = tf.config.threading.get_intra_op_parallelism_threads()
    with pytest.raises(RuntimeError, match="must be set before TensorFlow starts"):
        demo._pin_threads(current + 3)


# -- Keras progress: a bar on a terminal, one plain line per epoch elsewhere --
class Stream(io.StringIO):
    def __init__(self, tty):
        super().__init__()
        self.tty = tty

    def isatty(self):
        return self.tty


@pytest.mark.parametrize("verbose, tty, expected", [
    (0, True, 0), (0, False, 0), (False, True, 0),
    (1, True, 1), (1, False, 2), (True, False, 2),
    (2, True, 2), (3, False, 2),
])
def test_keras_verbose(verbose, tty, expected):
    assert keras_verbose(verbose, stream=Stream(tty)) == expected


@pytest.mark.parametrize("verbose", [-1, 1.5, "1", None])
def test_keras_verbose_rejects(verbose):
    with pytest.raises(ValueError, match="verbose must be a non-negative integer or a bool"):
        keras_verbose(verbose)


def test_interactive(monkeypatch):
    closed = io.StringIO()
    closed.close()
    assert not interactive(closed)
    assert not interactive(object())
    assert interactive(Stream(True))
    monkeypatch.setitem(sys.modules, "ipykernel", types.ModuleType("ipykernel"))
    assert interactive(io.StringIO())  # a notebook renders redrawn bars


def test_keras_verbose_2_writes_plain_lines(tmp_path):
    # What keras_verbose relies on: verbose=2 writes no control bytes.
    code = ("import numpy as np, keras\n"
            "m = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])\n"
            "m.compile('sgd', 'mse')\n"
            "x = np.zeros((64, 3), 'float32')\n"
            "for verbose in (2, 1):\n"
            "    m.fit(x, x[:, :1], epochs=2, batch_size=8, verbose=verbose)\n"
            "    print('@@')\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, check=True).stdout
    plain, bar, _ = out.split(b"@@\n")
    assert plain.count(b"Epoch") == 2 and not any(c in plain for c in CONTROL)
    assert any(c in bar for c in CONTROL)  # the bar Keras draws into a pipe at verbose=1


# -- the real command, output to pipes ------------------------------------------
def test_bad_argument_in_a_real_process():
    done = subprocess.run([sys.executable, "-m", "astromorphnet", "demo", "--n-target", "-5"],
                          capture_output=True, text=True)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.splitlines() == [
        "astromorphnet demo: error: argument --n-target: expected an integer >= 1; "
        "got '-5' (see 'astromorphnet demo --help')"]


def test_log_has_no_control_characters(tmp_path):
    done = subprocess.run([sys.executable, "-m", "astromorphnet", "demo", *TINY, "--threads",
                           "2", "--output-dir", str(tmp_path)], capture_output=True)
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    for stream in (done.stdout, done.stderr):
        assert not [c for c in CONTROL if c in stream]
    out = done.stdout.decode()
    assert re.search(r"^Epoch 2/2\n\d+/\d+ - .* - loss: ", out, re.MULTILINE)
    assert "INFO: Training supervised DANN (AdversarialDARegressor)..." in out
    assert "R² on the real-like TARGET test set (2 galaxies):" in out
    assert (tmp_path / "r2_target.ecsv").exists()

