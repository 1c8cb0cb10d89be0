"""The ``mixedfit`` command: CSV files it cannot read (one line on stderr naming the file, exit 2),
separators, standard input, lmerTest's tests and intervals, and output it cannot write.

(The command's first tests, on bad formulas and a missing file, are in test_errors.py.)
"""

from __future__ import annotations

import subprocess
import sys
from importlib import metadata
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


# -- what the command does beyond the summary -------------------------------------------
def _run(*args: str, stdin: bytes | None = None, stdout=subprocess.PIPE) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mixedfit", *args], input=stdin, stdout=stdout,
                          stderr=subprocess.PIPE, timeout=300)


def test_python_m_mixedfit_and_its_version():
    done = _run("--version")
    assert done.returncode == 0
    assert done.stdout.decode().strip() == f"mixedfit {metadata.version('mixedfit')}"


@pytest.mark.parametrize("sep", [";", "\t", "|", ","])
def test_the_separator_is_found_from_the_header(tmp_path: Path, capsys, sep):
    sleep = mf.load_dataset("sleepstudy")
    path = tmp_path / "sleep.txt"
    sleep.to_csv(path, sep=sep, index=False)
    assert main(["fit", FORMULA, "--csv", str(path)]) == 0
    expected = mf.mixed(FORMULA, sleep, data_name="sleep").summary()
    assert capsys.readouterr().out == f"{expected}\n"


def test_an_explicit_separator_wins(tmp_path: Path, capsys):
    path = tmp_path / "sleep.csv"
    mf.load_dataset("sleepstudy").to_csv(path, sep=";", index=False)
    assert main(["fit", FORMULA, "--csv", str(path), "--sep", ","]) == 2
    # one column named "Reaction;Days;Subject": the formula's are missing
    assert "the columns are: Reaction;Days;Subject" in capsys.readouterr().err


def test_csv_from_standard_input():
    sleep = mf.load_dataset("sleepstudy")
    done = _run("fit", FORMULA, "--csv", "-", stdin=sleep.to_csv(index=False).encode())
    assert done.returncode == 0, done.stderr
    assert done.stdout.decode() == f"{mf.mixed(FORMULA, sleep, data_name='stdin').summary()}\n"


def test_ddf_and_confint(capsys):
    assert main(["fit", FORMULA, "--data", "sleepstudy", "--ddf", "satterthwaite", "--confint", "wald"]) == 0
    fit = mf.mixed(FORMULA, mf.load_dataset("sleepstudy"), data_name="sleepstudy")
    intervals = fit.confint(method="wald").to_string()
    assert capsys.readouterr().out == f"{fit.summary(ddf='satterthwaite')}\n{intervals}\n\n"


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="no /dev/full on this system")
def test_a_full_disk_is_one_line_not_a_traceback():
    with open("/dev/full", "wb") as full:
        done = _run("fit", FORMULA, "--data", "sleepstudy", stdout=full)
    assert done.returncode == 1
    assert done.stderr.decode() == "mixedfit: error: cannot write the output: No space left on device\n"
