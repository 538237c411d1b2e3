"""The command line of the whole workflow (issue 13, item 2): simulate → train → label →
finetune → measure on tiny inputs, through `main` as the ``astromorphnet`` command runs it."""

import re
import warnings

import astropy.units as u
import numpy as np
import pytest
from astropy.io import fits
from astropy.table import QTable
from astropy.wcs import WCS

import astromorphnet.pipeline
from astromorphnet import SersicCNNRegressor, TransferLearningRegressor, load
from astromorphnet.__main__ import main
from astromorphnet.simulation import SurveyConfig, open_dataset, simulate_galaxies

ZEROPOINT = 25.94
PIXEL_SCALE = 0.06


def fails(argv, capsys, status=2):
    """Run the command; return its one line of standard error (exit status 2)."""
    if status == 2:
        with pytest.raises(SystemExit) as stop:
            main(argv)
        assert stop.value.code == 2
    else:
        assert main(argv) == status
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("astromorphnet"), captured.err
    assert "Traceback" not in captured.err
    return lines[0]


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    """simulate → train → simulate (the "real" cutouts) → label (from a FITS cube) → finetune."""
    folder = tmp_path_factory.mktemp("chain")
    paths = {name.replace(".", "_").removesuffix("_h5").removesuffix("_pkl"): str(folder / name)
             for name in ("sims.h5", "model.pkl", "real.h5", "real.fits", "labels.ecsv",
                          "tuned.pkl")}
    assert main(["simulate", "CANDELS_F160W", "-n", "20", "-o", paths["sims"],
                 "--stamp-size", "32", "--seed", "1", "-q"]) == 0
    assert main(["train", paths["sims"], "-o", paths["model"], "--architecture",
                 "light", "--max-epochs", "1", "--learning-rate", "1e-3", "--augment",
                 "-q"]) == 0
    assert main(["simulate", "CANDELS_F160W", "-n", "6", "-o", paths["real"],
                 "--stamp-size", "32", "--seed", "2", "-q"]) == 0
    with open_dataset(paths["real"]) as dataset:
        header = fits.Header({"MAGZERO": ZEROPOINT})
        fits.PrimaryHDU(dataset.images[:], header).writeto(paths["real_fits"])
    assert main(["label", paths["real_fits"], "-o", paths["labels_ecsv"], "--survey",
                 "CANDELS_F160W", "--keep-flagged", "-q"]) == 0
    assert main(["finetune", paths["model"], paths["real"], paths["labels_ecsv"],
                 "-o", paths["tuned"], "--max-epochs", "1", "--freeze", "--no-augment",
                 "-q"]) == 0
    return paths


def test_simulate_writes_a_set(chain):
    with open_dataset(chain["sims"]) as dataset:
        assert dataset.images.shape == (20, 32, 32)
        assert dataset.survey["name"] == "CANDELS_F160W"
        assert dataset.truth.meta["seed"] == 1


def test_train_saves_a_fitted_regressor(chain):
    model = load(chain["model"])
    assert isinstance(model, SersicCNNRegressor)
    assert model.architecture == "light" and model.n_epochs_ == 1
    assert model.input_shape_ == (32, 32)
    assert model.augment  # --augment reaches the estimator


def test_train_offers_every_named_architecture():
    from astromorphnet._cli._train import ARCHITECTURE_NAMES
    from astromorphnet.models import ARCHITECTURES

    assert sorted(ARCHITECTURE_NAMES) == sorted(ARCHITECTURES)


def test_label_writes_cut_labels(chain):
    labels = QTable.read(chain["labels_ecsv"])
    assert len(labels) == 6  # --keep-flagged: every fit, with its verdict
    assert list(labels["index"]) == list(range(6))
    assert labels["mag"].unit == u.ABmag
    expected = (labels["fit_flag"] == 0) & (labels["flag"] == 0)
    assert list(labels["selected"]) == list(expected)
    assert expected.any(), "no fit passed the cuts: the fine-tuning below used nothing"
    # The cube's MAGZERO gave the magnitudes (the survey preset's is the same here).
    truth = open_dataset(chain["real"]).truth
    good = np.flatnonzero(expected)
    assert np.abs(labels["mag"][good].value - truth["mag"][good].value).max() < 0.5


def test_finetune_saves_a_transfer_learning_regressor(chain):
    tuned = load(chain["tuned"])
    assert isinstance(tuned, TransferLearningRegressor)
    assert tuned.trainable == "head" and tuned.n_epochs_ == 1
    # --no-augment removes the augmentation the pretrained network was trained with.
    assert not any(type(layer).__name__ == "RandomDihedral" for layer in tuned.model_.layers)
    assert any(type(layer).__name__ == "RandomDihedral"
               for layer in load(chain["model"]).model_.layers)
    assert tuned.pretrained_.model_id_ == load(chain["model"]).model_id_


def test_label_default_keeps_only_selected_rows(chain, tmp_path):
    path = str(tmp_path / "labels.fits")
    assert main(["label", chain["real"], "-o", path, "--survey", "CANDELS_F160W",
                 "--max-chi2", "1e9", "-q"]) == 0
    labels = QTable.read(path)
    every = QTable.read(chain["labels_ecsv"])
    assert list(labels["index"]) == list(every["index"][every["selected"]])
    assert labels["selected"].all() and labels["mag"].unit == u.ABmag
    assert labels.meta["selection"] == "fit_flag == 0 and flag == 0 and chi2_nu <= 1000000000.0"


# -- measure -------------------------------------------------------------------------
@pytest.fixture(scope="module")
def mosaic(tmp_path_factory):
    """A 192² unitless mosaic with 4 galaxies, a TAN WCS and its zeropoint in the header."""
    survey = SurveyConfig.from_preset("CANDELS_F160W", stamp_size=32, noise=None)
    stamps, _ = simulate_galaxies(4, survey, random_state=3,
                                  ranges={"mag": (19, 21), "r_eff": (2, 4), "sersic_n": (1, 2)})
    image = np.random.default_rng(0).normal(0.0, 0.008, (192, 192)).astype(np.float32)
    for stamp, (x, y) in zip(stamps, [(48, 48), (144, 48), (48, 144), (144, 144)]):
        image[y - 16:y + 16, x - 16:x + 16] += stamp
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    wcs.wcs.crval = [53.1, -27.8]
    wcs.wcs.crpix = [96.5, 96.5]
    wcs.wcs.cdelt = [-PIXEL_SCALE / 3600, PIXEL_SCALE / 3600]
    header = wcs.to_header()
    header["MAGZERO"] = ZEROPOINT
    path = tmp_path_factory.mktemp("mosaic") / "mosaic.fits"
    fits.PrimaryHDU(image, header).writeto(path)
    return str(path)


@pytest.mark.parametrize("name", ["catalog.fits", "catalog.parquet"])
def test_measure_writes_a_catalog(chain, mosaic, tmp_path, name, capsys):
    path = str(tmp_path / name)
    assert main(["measure", mosaic, "--model", chain["model"], "-o", path,
                 "--size", "32"]) == 0
    assert f"Wrote 4 galaxies to {path}" in capsys.readouterr().out
    if name.endswith(".parquet"):
        import pyarrow.parquet as pq

        assert {"ra", "dec", "mag", "flag"} <= set(pq.read_table(path).column_names)
        return
    catalog = QTable.read(path)
    assert len(catalog) == 4
    assert catalog["mag"].unit == u.ABmag and catalog["ra"].unit == u.deg
    assert np.allclose(catalog["ra"].value, 53.1, atol=0.01)
    assert catalog.meta["model_path"] == chain["model"]


def test_measure_with_no_option_uses_the_shipped_model(mosaic, tmp_path, capsys):
    """The issue's goal: ``astromorphnet measure mosaic.fits -o cat.fits``, no other step."""
    path = str(tmp_path / "cat.fits")
    assert main(["measure", mosaic, "-o", path]) == 0
    assert f"Wrote 4 galaxies to {path}" in capsys.readouterr().out
    catalog = QTable.read(path)
    assert catalog.meta["model_name"] == "candels-f160w"
    # Galaxies of mag 19-21 in the model's own survey conditions.
    assert np.all((catalog["mag"].value > 18.5) & (catalog["mag"].value < 21.5))


def test_measure_refuses_an_existing_catalog_before_any_work(chain, mosaic, tmp_path,
                                                              capsys, monkeypatch):
    path = tmp_path / "catalog.fits"
    path.write_text("keep me")
    monkeypatch.setattr(astromorphnet.pipeline, "measure", _no_work)
    line = fails(["measure", mosaic, "-o", str(path)], capsys)
    assert "exists; add --overwrite to replace it" in line
    assert path.read_text() == "keep me"


def _no_work(*args, **kwargs):
    raise AssertionError("measuring despite a bad argument")


def test_measure_workers_start_a_local_cluster(chain, mosaic, tmp_path, monkeypatch):
    seen = {}

    def measure(images, model, **options):
        client = options["client"]
        seen.update(images=images, model=model, options=options,
                    workers=len(client.scheduler_info()["workers"]),
                    threads=set(client.nthreads().values()))
        return QTable({"label": [1], "mag": [20.0] * u.ABmag})

    monkeypatch.setattr(astromorphnet.pipeline, "measure", measure)
    path = str(tmp_path / "catalog.ecsv")
    assert main(["measure", mosaic, "-o", path, "--workers", "2", "--batch-size", "64",
                 "--tile-size", "160", "--size", "32", "-q"]) == 0
    assert seen["workers"] == 2 and seen["threads"] == {1}
    assert seen["images"] == [mosaic] and seen["model"] is None  # the shipped default
    assert seen["options"]["batch_size"] == 64 and seen["options"]["tile_size"] == 160
    assert len(QTable.read(path)) == 1


def test_measure_scheduler_connects_to_a_running_cluster(mosaic, tmp_path, monkeypatch):
    from dask.distributed import LocalCluster

    seen = {}

    def measure(images, model, **options):
        seen["address"] = options["client"].scheduler.address
        return QTable({"label": [1]})

    monkeypatch.setattr(astromorphnet.pipeline, "measure", measure)
    with LocalCluster(n_workers=1, processes=False, dashboard_address=":0") as cluster:
        assert main(["measure", mosaic, "-o", str(tmp_path / "c.ecsv"), "--scheduler",
                     cluster.scheduler_address, "-q"]) == 0
    assert seen["address"] == cluster.scheduler_address


def test_error_during_the_work_is_one_line_status_1(mosaic, tmp_path, capsys, monkeypatch):
    def measure(*args, **kwargs):
        raise ValueError("a zeropoint is needed\nand none is known")

    monkeypatch.setattr(astromorphnet.pipeline, "measure", measure)
    line = fails(["measure", mosaic, "-o", str(tmp_path / "c.fits"), "-q"], capsys, status=1)
    assert line == "astromorphnet measure: error: a zeropoint is needed and none is known"
    assert not (tmp_path / "c.fits").exists()


# -- progress and quiet ----------------------------------------------------------------
def test_progress_through_astropy_log_quiet_silences_it(tmp_path, capsys):
    path = str(tmp_path / "s.h5")
    assert main(["simulate", "GROUND_R", "-n", "2", "-o", path, "--stamp-size", "16"]) == 0
    out = capsys.readouterr().out
    assert re.search(rf"^INFO: Wrote {re.escape(path)}", out, re.MULTILINE)
    assert not [c for c in ("\r", "\x08", "\x1b[") if c in out]  # readable in a log file
    assert main(["simulate", "GROUND_R", "-n", "2", "-o", path, "--stamp-size", "16",
                 "--overwrite", "-q"]) == 0
    assert capsys.readouterr() == ("", "")


def test_training_log_in_a_file_is_plain(chain, tmp_path, capsys):
    # Standard output captured is no terminal, as in a batch job's log file.
    path = str(tmp_path / "m.pkl")
    assert main(["train", chain["sims"], "-o", path, "--architecture", "light",
                 "--max-epochs", "2", "--batch-size", "8"]) == 0
    captured = capsys.readouterr()
    for stream in captured:
        assert not [c for c in ("\r", "\x08", "\x1b[") if c in stream]
    assert re.search(r"^Epoch 2/2\n\d+/\d+ - .* - loss: ", captured.out, re.MULTILINE)
    assert "INFO: Training SersicCNNRegressor (light) on the 20 galaxies of sims.h5" in captured.out
    assert f"INFO: Saved SersicCNNRegressor to {path}" in captured.out


# -- argument errors: one line, exit status 2, before any work ------------------------------
@pytest.fixture
def files(tmp_path, chain):
    text = tmp_path / "notes.txt"
    text.write_text("not a data file")
    labels = tmp_path / "labels.ecsv"
    QTable({"r_eff": [1.0]}).write(labels)
    return {"txt": str(text), "labels": str(labels), "dir": str(tmp_path),
            "new": str(tmp_path / "new.pkl"), **chain}


@pytest.mark.parametrize("argv, message", [
    (["simulate", "SDSS", "-n", "5", "-o", "{dir}/s.h5"], r"argument PRESET: invalid choice"),
    (["simulate", "GROUND_R", "-n", "0", "-o", "{dir}/s.h5"],
     r"-n/--n-galaxies: expected an integer >= 1; got '0'"),
    (["simulate", "GROUND_R", "-n", "5"], r"required: -o/--output"),
    (["simulate", "GROUND_R", "-n", "5", "-o", "{dir}/s.h5", "--stamp-size", "4"],
     r"--stamp-size: expected an integer >= 8"),
    (["simulate", "GROUND_R", "-n", "5", "-o", "{dir}/no/s.h5"], r"folder .* does not exist"),
    (["simulate", "GROUND_R", "-n", "5", "-o", "{sims}"], r"exists; add --overwrite"),
    (["simulate", "GROUND_R", "-n", "5", "-o", "{txt}", "--overwrite"],
     r"-o/--output: .*notes.txt is not an astromorphnet simulated set"),
    (["simulate", "GROUND_R", "-n", "5", "-o", "{dir}/s.h5", "--seed", "-1"],
     r"--seed: expected an integer in \[0, 4294967294\]"),
    (["train", "{dir}/none.h5", "-o", "{new}"], r"argument SET.h5: no file"),
    (["train", "{txt}", "-o", "{new}"], r"argument SET.h5: .* not a complete astromorphnet"),
    (["train", "{sims}", "-o", "{dir}/model.keras"], r"would look like a Keras network"),
    (["train", "{sims}", "-o", "{model}"], r"exists; add --overwrite"),
    (["train", "{sims}", "-o", "{new}", "--loss", "huber"], r"--loss: invalid choice"),
    (["train", "{sims}", "-o", "{new}", "--validation-fraction", "1"],
     r"--validation-fraction: expected a number in \(0, 1\); got '1'"),
    (["train", "{sims}", "-o", "{new}", "--learning-rate", "nan"],
     r"--learning-rate: expected a number in \(0, inf\)"),
    (["finetune", "{txt}", "{real}", "{labels_ecsv}", "-o", "{new}"],
     r"argument MODEL: cannot fine-tune .*notes.txt"),
    (["finetune", "{model}", "{real}", "{labels}", "-o", "{new}"],
     r"argument LABELS: no column 'mag', 'sersic_n', 'ellipticity'"),
    (["finetune", "{model}", "{real}", "{txt}", "-o", "{new}"],
     r"argument LABELS: cannot read .* as a table"),
    (["finetune", "{model}", "{txt}", "{labels_ecsv}", "-o", "{new}"],
     r"cannot read cutouts from .*notes.txt"),
    (["finetune", "{model}", "{sims}", "{labels_ecsv}", "-o", "{new}", "--freeze",
      "--train-last", "1"], r"--train-last: not allowed with argument --freeze"),
    (["label", "{real}", "-o", "{dir}/l.fits"], r"one of the arguments --survey --psf is"),
    (["label", "{real}", "-o", "{dir}/l.txt", "--survey", "GROUND_R"],
     r"-o/--output: cannot tell the catalog format of .*l.txt"),
    (["label", "{real}", "-o", "{dir}/l.fits", "--psf", "{txt}"], r"argument --psf: "),
    (["label", "{real}", "-o", "{dir}/l.fits", "--survey", "CANDELS_F160W_REAL_LIKE"],
     r"argument --survey: the survey has 3 PSFs"),
    (["label", "{real}", "-o", "{dir}/l.fits", "--survey", "GROUND_R", "--max-chi2", "0"],
     r"--max-chi2: expected a number in \(0, inf\); got '0'"),
    (["measure", "-o", "{dir}/c.fits"], r"required: IMAGE"),
    (["measure", "{txt}", "-o", "{dir}/c.fits", "--workers", "2", "--scheduler", "tcp://x:1"],
     r"--scheduler: not allowed with argument --workers"),
    (["measure", "{txt}", "-o", "{dir}/c.fits", "--workers", "0"],
     r"--workers: expected an integer >= 1"),
    (["measure", "{txt}", "-o", "{dir}/c.xml"], r"cannot tell the catalog format"),
    (["measure", "{txt}", "-o", "{dir}/c.fits", "--model", "no-such-model"],
     r"--model: no file 'no-such-model', nor a shipped model of that name \(shipped: "),
    (["measure", "{txt}", "-o", "{dir}/c.fits", "--tile-size", "100"],
     r"--tile-size/--tile-overlap: tile_size must be ints larger than twice the overlap"),
    (["measure", "{txt}", "-o", "{dir}/c.fits", "--tile-overlap", "100"],
     r"--tile-size/--tile-overlap: tile_overlap is given without tile_size"),
    (["measure", "{dir}", "-o", "{dir}/c.fits"], r"argument IMAGE: .* is a folder"),
    (["predict", "x.fits"], r"invalid choice: 'predict'"),
])
def test_bad_argument_one_line_exit_2(argv, message, files, capsys, monkeypatch):
    monkeypatch.setattr(astromorphnet.pipeline, "measure", _no_work)
    line = fails([arg.format(**files) for arg in argv], capsys)
    assert re.search(message, line), line


@pytest.mark.parametrize("columns, message", [
    ({"index": [0, 9]}, r"its 'index' column must hold cutout numbers in \[0, 6\); got 9"),
    ({"index": [0.0, 1.0]}, r"its 'index' column must hold integers \(cutout numbers\); "
                            r"got float64"),
    ({}, r"2 rows for 6 cutouts and no 'index' column"),
    ({"index": [0, 1], "selected": [False, False]}, r"no row to fine-tune on"),
])
def test_finetune_labels_that_fit_no_cutout(columns, message, chain, tmp_path, capsys):
    labels = QTable({"mag": [20.0, 21.0] * u.ABmag, "r_eff": [2.0, 3.0] * u.pix,
                     "sersic_n": [1.0, 2.0], "ellipticity": [0.1, 0.2], **columns})
    labels.write(tmp_path / "labels.ecsv")
    line = fails(["finetune", chain["model"], chain["real"], str(tmp_path / "labels.ecsv"),
                  "-o", str(tmp_path / "m.pkl")], capsys)
    assert re.search(message, line), line
    assert not (tmp_path / "m.pkl").exists()


@pytest.mark.parametrize("command", ["simulate", "train", "label", "finetune", "measure",
                                     "demo"])
def test_help_of_each_subcommand(command, capsys):
    with pytest.raises(SystemExit) as stop:
        main([command, "--help"])
    assert stop.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: astromorphnet {command}") and "--quiet" in out


def test_measure_catalog_fits_writes_without_warnings(chain, mosaic, tmp_path):
    catalog = astromorphnet.pipeline.measure(mosaic, chain["model"], size=32)
    from astromorphnet.catalog import write_catalog

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        write_catalog(catalog, tmp_path / "catalog.fits")
    assert QTable.read(tmp_path / "catalog.fits")["mag"].unit == u.ABmag
