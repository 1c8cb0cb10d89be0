"""The ``mixedfit`` command on CSV files it cannot read: one line on stderr naming the file, exit 2.

(The command's first tests, on bad formulas and a missing file, are in test_errors.py.)
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

import mixedfit as mf
from mixedfit.cli import main

FORMULA = "Reaction ~ Days + (1 | Subject)"


@pytest.fixture
def sleep_csv_rows() -> list[str]:
    """sleepstudy as CSV lines, its subjects named with an accented letter."""
    sleep = mf.load_dataset("sleepstudy")
    sleep["Subject"] = "Sujet-é" + sleep["Subject"].astype(str)
    return sleep.to_csv(index=False).splitlines()


def _error_line(capsys, argv: list[str]) -> str:
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and "Traceback" not in captured.err
    assert captured.err.startswith("mixedfit: error: ") and captured.err.count("\n") == 1, captured.err
    return captured.err


def test_an_empty_csv(tmp_path: Path, capsys):
    path = tmp_path / "empty.csv"
    path.write_bytes(b"")
    err = _error_line(capsys, ["fit", FORMULA, "--csv", str(path)])
    assert str(path) in err and "empty" in err


def test_a_csv_with_a_header_and_no_rows(tmp_path: Path, capsys):
    path = tmp_path / "header.csv"
    path.write_text("Reaction,Days,Subject\n", encoding="utf-8")
    err = _error_line(capsys, ["fit", FORMULA, "--csv", str(path)])
    assert str(path) in err and "no rows" in err


def test_a_ragged_csv_names_its_line(tmp_path: Path, capsys, sleep_csv_rows):
    path = tmp_path / "ragged.csv"
    sleep_csv_rows[50] += ",99"  # the file's line 51
    path.write_text("\n".join(sleep_csv_rows) + "\n", encoding="utf-8")
    err = _error_line(capsys, ["fit", FORMULA, "--csv", str(path)])
    assert str(path) in err and "line 51" in err


def test_a_latin1_csv_is_refused_with_its_line_and_read_with_its_encoding(tmp_path: Path, capsys,
                                                                            sleep_csv_rows):
    # Decoding as latin-1 never fails, so guessing it would silently misread
    # other encodings' letters: the user names the encoding instead.
    path = tmp_path / "latin.csv"
    path.write_text("\n".join(sleep_csv_rows) + "\n", encoding="latin-1")
    err = _error_line(capsys, ["fit", FORMULA, "--csv", str(path)])
    assert str(path) in err and "line 2" in err and "--encoding" in err

    assert main(["fit", FORMULA, "--csv", str(path), "--encoding", "latin-1"]) == 0
    data = pd.read_csv(path, encoding="latin-1")
    assert (data["Subject"].str.startswith("Sujet-é")).all()
    expected = mf.mixed(FORMULA, data, data_name="latin").summary()
    assert capsys.readouterr().out == f"{expected}\n"


def test_an_unknown_encoding(tmp_path: Path, capsys, sleep_csv_rows):
    path = tmp_path / "sleep.csv"
    path.write_text("\n".join(sleep_csv_rows) + "\n", encoding="utf-8")
    err = _error_line(capsys, ["fit", FORMULA, "--csv", str(path), "--encoding", "klingon"])
    assert "klingon" in err
