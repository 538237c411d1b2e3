"""`write_catalog`: the format from the extension, atomic writes, FITS without warnings."""

import os
import warnings

import astropy.units as u
import numpy as np
import pytest
from astropy.coordinates import SkyCoord
from astropy.io import fits
from astropy.table import QTable, Table

from astromorphnet.catalog import catalog_format, write_catalog


@pytest.fixture
def catalog():
    """What `measure` returns, in small: sky positions, an AB magnitude, rich meta."""
    sky = SkyCoord([53.1, 53.2] * u.deg, [-27.8, -27.7] * u.deg)
    return QTable(
        {"label": [1, 2], "x": [10.5, 40.2] * u.pix, "ra": sky.ra, "dec": sky.dec,
         "sky_centroid": sky, "mag": [21.3, 22.0] * u.ABmag, "mag_err": [0.1, 0.2] * u.mag,
         "r_eff": [3.0, 5.0] * u.pix, "sersic_n": [1.2, 4.0], "flag": [0, 4]},
        meta={"estimator": "SersicCNNRegressor", "model": "PSF-convolved single Sérsic",
              "model_path": "/data/models/candels.pkl", "astromorphnet_version": "1.0",
              "images": ["a.fits", "b.fits"], "size": (64, 64), "zeropoints": [25.94, None],
              "detection": {"threshold": 1.5, "deblend": True}, "coverage": np.float64(0.68),
              "nan_value": float("nan"), "comments": ["made by a test"]})


@pytest.mark.parametrize("name, fmt", [
    ("c.fits", "fits"), ("c.FITS", "fits"), ("c.fit", "fits"), ("c.fts", "fits"),
    ("c.fits.gz", "fits"), ("c.ecsv", "ascii.ecsv"), ("c.parquet", "parquet"),
    ("c.csv", "ascii.csv"),
])
def test_format_from_the_extension(name, fmt):
    assert catalog_format(name) == fmt


@pytest.mark.parametrize("name", ["c.txt", "c.gz", "c", "c.fits.bz2", "c.h5"])
def test_unknown_extension(name, tmp_path):
    with pytest.raises(ValueError, match=r"cannot tell the catalog format of .* from its "
                                         r"extension; use one of \.fits, \.fit"):
        write_catalog(QTable({"a": [1]}), tmp_path / name)
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("name", ["c.fits", "c.fits.gz", "c.ecsv"])
def test_round_trip_keeps_units_and_positions(catalog, tmp_path, name):
    path = write_catalog(catalog, tmp_path / name)
    assert path == str(tmp_path / name)
    back = QTable.read(path)
    assert back["mag"].unit == u.ABmag and back["r_eff"].unit == u.pix
    assert u.allclose(back["mag"], catalog["mag"])
    assert u.allclose(back["ra"], catalog["ra"]) and back["ra"].unit == u.deg
    assert list(back["flag"]) == [0, 4]


def test_gz_is_compressed(catalog, tmp_path):
    path = write_catalog(catalog, tmp_path / "c.fits.gz")
    with open(path, "rb") as f:
        assert f.read(2) == b"\x1f\x8b"


def test_ecsv_keeps_skycoord_and_meta(catalog, tmp_path):
    back = QTable.read(write_catalog(catalog, tmp_path / "c.ecsv"))
    assert isinstance(back["sky_centroid"], SkyCoord)
    assert back.meta["detection"] == {"threshold": 1.5, "deblend": True}


def test_parquet(catalog, tmp_path):
    pq = pytest.importorskip("pyarrow.parquet")
    table = pq.read_table(write_catalog(catalog, tmp_path / "c.parquet"))
    assert {"mag", "sky_centroid.ra", "sky_centroid.dec"} <= set(table.column_names)


def test_csv_has_plain_ra_dec_columns(tmp_path):
    sky = SkyCoord([1.0, 2.0] * u.deg, [3.0, 4.0] * u.deg)
    path = write_catalog(QTable({"label": [1, 2], "sky_centroid": sky}), tmp_path / "c.csv")
    back = Table.read(path, format="ascii.csv")
    assert back.colnames == ["label", "ra", "dec"]
    assert list(back["dec"]) == [3.0, 4.0]


# -- FITS: no warnings, nothing lost silently ----------------------------------------
def test_fits_writes_without_warnings(catalog, tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        path = write_catalog(catalog, tmp_path / "c.fits")
        back = QTable.read(path)
    assert "sky_centroid" not in back.colnames  # ra/dec hold the same positions
    meta = back.meta
    assert meta["estimator"] == "SersicCNNRegressor"  # HIERARCH, case kept
    assert meta["MODEL"] == "PSF-convolved single Sersic"  # FITS headers are ASCII
    assert meta["model_path"] == "/data/models/candels.pkl"
    assert meta["IMAGES"] == '["a.fits", "b.fits"]'  # JSON text, not dropped
    assert meta["SIZE"] == "[64, 64]"  # not 64 with a comment, as astropy writes a tuple
    assert meta["zeropoints"] == "[25.94, null]"
    assert meta["detection"] == '{"threshold": 1.5, "deblend": true}'
    assert meta["COVERAGE"] == 0.68 and meta["nan_value"] == "nan"
    assert meta["comments"] == ["made by a test"]


def test_fits_magnitude_unit_in_the_column_comment(catalog, tmp_path):
    path = write_catalog(catalog, tmp_path / "c.fits")
    header = fits.getheader(path, 1)
    index = [header[f"TTYPE{i}"] for i in range(1, header["TFIELDS"] + 1)].index("mag") + 1
    assert header[f"TCOMM{index}"] == "unit: mag(AB)"
    assert f"TUNIT{index}" not in header  # 'mag(AB)' is no FITS unit
    assert header[f"TUNIT{index + 1}"] == "mag"  # mag_err: a magnitude difference


def test_fits_catalog_read_back_writes_again(catalog, tmp_path):
    back = QTable.read(write_catalog(catalog, tmp_path / "c.fits"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        path = write_catalog(back, tmp_path / "again.fits")
    assert QTable.read(path)["mag"].unit == u.ABmag
    # The comment read back is not written twice (as meta, then as the column's).
    assert [card.value for card in fits.getheader(path, 1).cards
            if card.keyword.startswith("TCOMM")] == ["unit: mag(AB)"]


def test_fits_skycoord_without_ra_dec(tmp_path):
    sky = SkyCoord(l=[10.0, 20.0] * u.deg, b=[1.0, 2.0] * u.deg, frame="galactic")
    back = QTable.read(write_catalog(QTable({"pos": sky}), tmp_path / "c.fits"))
    assert back.colnames == ["ra", "dec"]
    assert u.allclose(back["ra"], sky.icrs.ra) and u.allclose(back["dec"], sky.icrs.dec)


def test_fits_skycoord_differing_from_ra_dec_is_kept(tmp_path):
    sky = SkyCoord([1.0, 2.0] * u.deg, [3.0, 4.0] * u.deg)
    table = QTable({"ra": [1.0, 2.0] * u.deg, "dec": [3.0, 4.5] * u.deg, "peak": sky})
    back = QTable.read(write_catalog(table, tmp_path / "c.fits"))
    assert back.colnames == ["ra", "dec", "peak_ra", "peak_dec"]
    assert list(back["peak_dec"].value) == [3.0, 4.0]


def test_catalog_left_untouched(catalog, tmp_path):
    write_catalog(catalog, tmp_path / "c.fits")
    assert isinstance(catalog["sky_centroid"], SkyCoord)
    assert catalog.meta["images"] == ["a.fits", "b.fits"]


@pytest.mark.parametrize("key, message", [
    ("naxis", r"meta key 'naxis' is a keyword of the FITS table structure"),
    ("TTYPE1", r"meta key 'TTYPE1' is a keyword of the FITS table structure"),
    ("k" * 61, r"cannot be a FITS header keyword \(at most 60 characters, no '='\)"),
    ("a=b", r"cannot be a FITS header keyword"),
])
def test_fits_meta_keys_a_header_cannot_hold(key, message, tmp_path):
    with pytest.raises(ValueError, match=message):
        write_catalog(QTable({"a": [1]}, meta={key: 1}), tmp_path / "c.fits")
    assert os.listdir(tmp_path) == []


# -- destination -----------------------------------------------------------------
def test_refuses_an_existing_file_unless_overwrite(catalog, tmp_path):
    path = tmp_path / "c.ecsv"
    path.write_text("old")
    with pytest.raises(FileExistsError, match=r"c\.ecsv exists; pass overwrite=True"):
        write_catalog(catalog, path)
    assert path.read_text() == "old"
    write_catalog(catalog, path, overwrite=True)
    assert len(QTable.read(path)) == 2


def test_missing_folder_and_folder_as_path(catalog, tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        write_catalog(catalog, tmp_path / "no" / "c.fits")
    (tmp_path / "d.fits").mkdir()
    with pytest.raises(IsADirectoryError, match="is a folder"):
        write_catalog(catalog, tmp_path / "d.fits", overwrite=True)


def test_not_a_table(tmp_path):
    with pytest.raises(TypeError, match="table must be an astropy Table or QTable; got dict"):
        write_catalog({"a": [1]}, tmp_path / "c.fits")


@pytest.mark.parametrize("failure", [OSError("disk full"), KeyboardInterrupt()])
def test_failure_keeps_the_old_file_and_leaves_no_temporary(catalog, tmp_path, monkeypatch,
                                                            failure):
    path = tmp_path / "c.fits"
    write_catalog(catalog[:1], path)
    before = path.read_bytes()

    def write_then_fail(self, name, **kwargs):
        with open(name, "wb") as f:
            f.write(b"SIMPLE  = half a file")
        raise failure

    monkeypatch.setattr(Table, "write", write_then_fail)
    with pytest.raises(type(failure)):
        write_catalog(catalog, path, overwrite=True)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["c.fits"]


def test_unsupported_column_fails_cleanly(tmp_path):
    table = QTable({"a": np.array([{"x": 1}, None], dtype=object)})
    with pytest.raises(TypeError, match="unsupported object types"):
        write_catalog(table, tmp_path / "c.fits")
    assert os.listdir(tmp_path) == []
