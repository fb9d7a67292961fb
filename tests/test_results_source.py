"""Where the book finds a profile's tables: this machine's results/, else a committed record."""
import json

import pandas as pd
import pytest

from negspike.claims import ledger
from negspike.results import PROVENANCE, ResultsSource, results_source


def write(folder, name, **cols):
    folder.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(cols).to_csv(folder / f"{name}.csv", index=False)


@pytest.fixture
def dirs(tmp_path):
    return tmp_path / "results", tmp_path / "records"


def find(dirs, **kw):
    return results_source("cifar-cpu", ["t_summary", "t_pairs"], {"t_summary": ["ann_se"]},
                          results_dir=dirs[0], records_dir=dirs[1], **kw)


def test_this_machines_run_comes_first(dirs):
    for d in dirs:
        write(d / "cifar-cpu", "t_summary", ann_se=[0.1])
        write(d / "cifar-cpu", "t_pairs", a=[1])
    (dirs[1] / "cifar-cpu" / PROVENANCE).write_text(json.dumps({"commit": "abc"}))
    src = find(dirs)
    assert src.folder == dirs[0] / "cifar-cpu" and not src.recorded
    assert "this machine" in src.note()


def test_an_incomplete_or_outdated_run_falls_back_to_the_record(dirs):
    write(dirs[0] / "cifar-cpu", "t_summary", acc=[0.5])  # lacks ann_se: written by an older version
    write(dirs[0] / "cifar-cpu", "t_pairs", a=[1])
    assert find(dirs) is None  # and there is no record yet
    rec = dirs[1] / "cifar-cpu"
    write(rec, "t_summary", ann_se=[0.1])
    write(rec, "t_pairs", a=[1])
    assert find(dirs) is None, "a record without its provenance must not be shown"
    (rec / PROVENANCE).write_text(json.dumps({"command": "make reproduce PROFILE=cifar-cpu", "commit": "0123456789abcdef",
                                              "date": "2026-12-01 12:00 UTC", "machine": "x86_64, 2 CPU cores",
                                              "wall_minutes": 41.5, "dirty": False}))
    src = find(dirs)
    assert src.recorded and src.folder == rec
    note = src.note()
    assert "records/cifar-cpu/" in note and "0123456789" in note and "2026-12-01" in note and "42 min" in note
    assert src.read("t_summary")["ann_se"].tolist() == [0.1]


def test_an_empty_table_reads_as_empty(tmp_path):
    (tmp_path / "t.csv").write_text("")
    assert ResultsSource(tmp_path, recorded=False).read("t").empty


def test_the_ledger_names_a_record_as_the_source_of_its_cifar_rows(tmp_path):
    rec = tmp_path / "records" / "cifar-cpu"
    write(rec, "cifar10_summary", model=["vgg16"], calibration=["joint"], T=[8], snn_acc=[0.5], ann_acc=[0.6],
          delta_acc=[0.1], delta_low=[0.08], delta_high=[0.12], test_images=[100], profile=["cifar-cpu"],
          dataset=["cifar10_jpeg"], width=[0.25])
    write(rec, "cifar10_pairs", model=["vgg16"], a=["joint"], b=["two_stage"], T_a=[8], T_b=[8], diff=[0.01],
          low=[-0.02], high=[0.04])
    write(rec, "cifar10_settings", epochs=[4])
    (rec / PROVENANCE).write_text(json.dumps({"commit": "fedcba9876543210", "date": "2026-12-01 12:00 UTC"}))
    table = ledger(tmp_path / "results" / "quick", "quick", rec)
    vgg = table[table["claim"].str.contains("VGG-16")]
    assert (vgg["verdict"] != "not run").all()
    assert vgg["results"].str.contains("committed record of 2026-12-01 12:00 UTC, commit fedcba9876").all()
    assert (table[table["claim"].str.contains("ResNet-18")]["verdict"] == "not run").all()
