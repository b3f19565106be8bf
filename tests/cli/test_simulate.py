"""`aam simulate` end to end."""

import json

import pandas as pd

from aam.cli.main import main
from aam.data import load_study


def test_writes_a_study_that_loads(tmp_path, capsys):
    out = tmp_path / "sim"
    assert main(["simulate", "--output-dir", str(out), "--samples", "30", "--seed", "4", "--features", "40"]) == 0
    assert "30 samples x 40 features" in capsys.readouterr().out
    assert sorted(p.name for p in out.iterdir()) == ["metadata.tsv", "table.biom", "truth.json"]
    study = load_study(out / "table.biom", metadata=out / "metadata.tsv", target_columns=["ph"],
                       categorical_columns=["location"])
    assert study.n_samples == 30
    assert list(pd.read_csv(out / "metadata.tsv", sep="\t").columns) == [
        "sample_id", "ph", "temperature", "location", "depth", "ph_class"]
    assert json.loads((out / "truth.json").read_text())["seed"] == 4


def test_same_seed_same_files(tmp_path, capsys):
    for name in ("a", "b"):
        assert main(["simulate", "--output-dir", str(tmp_path / name), "--samples", "10", "--seed", "1"]) == 0
    assert (tmp_path / "a" / "metadata.tsv").read_text() == (tmp_path / "b" / "metadata.tsv").read_text()
    assert (tmp_path / "a" / "truth.json").read_text() == (tmp_path / "b" / "truth.json").read_text()


def test_bad_arguments_exit_2_with_one_line(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("")
    for args, fragment in ((["--samples", "0"], "--samples must be >= 1"),
                           (["--features", "3"], "--features must be >= 8"),
                           (["--output-dir", str(blocker / "x")], "cannot create output folder")):
        argv = ["simulate", "--output-dir", str(tmp_path / "out"), *args]
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("aam simulate: error: ") and fragment in err and "\n" not in err


def test_a_folder_holding_a_study_is_kept_unless_overwrite(tmp_path, capsys):
    out = tmp_path / "sim"
    assert main(["simulate", "--output-dir", str(out), "--samples", "10", "--seed", "1"]) == 0
    before = (out / "metadata.tsv").read_text()
    assert main(["simulate", "--output-dir", str(out), "--samples", "12", "--seed", "2"]) == 2
    err = capsys.readouterr().err.strip()
    assert "is not empty" in err and "--overwrite" in err and "\n" not in err
    assert (out / "metadata.tsv").read_text() == before
    assert main(["simulate", "--output-dir", str(out), "--samples", "12", "--seed", "2", "--overwrite"]) == 0
    assert (out / "metadata.tsv").read_text() != before
