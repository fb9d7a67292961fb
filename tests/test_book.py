"""Contracts of the book's notebooks (their execution is tested by nbval in `make test`)."""
import json
from pathlib import Path

import pytest

BOOK = Path(__file__).resolve().parents[1] / "book"
NOTEBOOKS = sorted(BOOK.glob("*.ipynb"))


def test_there_are_chapters():
    assert NOTEBOOKS


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_committed_without_outputs(path):
    nb = json.loads(path.read_text())
    dirty = [i for i, c in enumerate(nb["cells"]) if c["cell_type"] == "code" and (c.get("outputs") or c.get("execution_count"))]
    assert not dirty, f"{path.name}: cells {dirty} have outputs; clear them before committing"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_has_a_papermill_parameters_cell_naming_the_profile(path):
    nb = json.loads(path.read_text())
    params = [c for c in nb["cells"] if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(params) == 1, f"{path.name}: needs exactly one cell tagged 'parameters'"
    assert 'profile = "quick"' in "".join(params[0]["source"])


# --- the build: launch buttons, hidden papermill cells, the Status page (scripts/build_book.py) ---

import sys  # noqa: E402

import nbformat  # noqa: E402
import yaml  # noqa: E402

ROOT = BOOK.parent
sys.path.insert(0, str(ROOT / "scripts"))
import build_book  # noqa: E402
import status_page  # noqa: E402

LAUNCH_KEYS = ("binderhub_url", "jupyterhub_url", "colab_url", "jupyterlite_url", "deepnote_url")


def theme_options(config: dict) -> dict:
    """The html_theme_options jupyter-book derives from a _config.yml."""
    from jupyter_book.config import get_final_config
    final, _ = get_final_config(user_yaml=config, cli_config={"latex_individualpages": False}, validate=False)
    return final["html_theme_options"]


def test_repository_url_is_unset_and_no_button_points_anywhere():
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    assert not (config.get("repository") or {}).get("url"), "the repository URL is set only at build time"
    opts = theme_options(build_book.configure(config, ""))
    assert not opts.get("use_repository_button") and not opts.get("use_edit_page_button")
    assert not opts.get("use_issues_button")
    launch = opts.get("launch_buttons") or {}
    # sphinx-book-theme adds launch buttons when any of these is set
    assert not any(launch.get(k) for k in (*LAUNCH_KEYS, "thebe")), launch


def test_a_repository_url_turns_on_repository_and_launch_buttons():
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    opts = theme_options(build_book.configure(config, "https://example.org/owner/book"))
    assert opts["repository_url"] == "https://example.org/owner/book"
    assert opts["use_repository_button"]
    assert opts["launch_buttons"]["colab_url"] and opts["launch_buttons"]["binderhub_url"]


def test_papermill_cells_are_removed_from_the_pages():
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell('profile = "quick"', metadata={"tags": ["parameters"]}),
                nbformat.v4.new_code_cell('profile = "smoke"', metadata={"tags": ["injected-parameters"]}),
                nbformat.v4.new_code_cell("x = 1", metadata={"tags": ["hide-cell"]})]
    assert build_book.hide_papermill_cells(nb) == 2
    assert [c.metadata["tags"] for c in nb.cells] == [["parameters", "remove-cell"],
                                                      ["injected-parameters", "remove-cell"], ["hide-cell"]]
    assert build_book.hide_papermill_cells(nb) == 0  # idempotent


def test_status_page_joins_the_toc_once():
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    once = build_book.add_status_to_toc(toc)
    twice = build_book.add_status_to_toc(once)
    assert [e["file"] for e in twice["chapters"]].count("book/status") == 1


def test_status_page_reports_what_the_run_recorded():
    facts = {"chapter": "if_neuron", "title": "IF", "executed": True, "profile": "smoke", "seconds": 125.4,
             "finished_utc": "2026-11-30T10:02:03+00:00", "python": "3.11.7",
             "packages": {"torch": "2.14.1", "numpy": "2.4.6", "negspike": "0.1.0"},
             "platform": "Linux-x", "cpu": "Some CPU", "cpu_count": 4, "cpus_usable": 2, "gpu": None}
    other = {**facts, "chapter": "signed_neuron", "seconds": 3.0, "gpu": "H100"}
    page = status_page.status_markdown("smoke", [facts, other, {"chapter": "report", "title": "R", "executed": False}],
                                       {"built_utc": "2026-11-30T11:00:00+00:00", "python": "3.11.7",
                                        "packages": {"jupyter-book": "1.0.4"}})
    assert "| {doc}`if_neuron` | smoke | 2 min 05 s | 2026-11-30 10:02 |" in page
    assert "| {doc}`report` | not executed | | |" in page
    assert "2 of 3 chapters executed" in page and "2 min 08 s of execution in total" in page
    assert "| torch | 2.14.1 |" in page and "| CPU | Some CPU |" in page and "| CPU cores (usable) | 4 (2) |" in page
    assert "| GPU | none (if_neuron); H100 (signed_neuron) |" in page
    assert "| jupyter-book | 1.0.4 |" in page


def test_run_chapter_records_versions_and_hardware():
    import run_chapter
    facts = run_chapter.run_facts()
    import numpy
    import torch
    assert facts["packages"]["torch"].split("+")[0] == torch.__version__.split("+")[0]
    assert facts["packages"]["numpy"] == numpy.__version__
    assert facts["packages"]["negspike"] and facts["python"].count(".") == 2
    assert facts["cpu"] and facts["cpu_count"] >= facts["cpus_usable"] >= 1
    assert ("gpu" in facts) and (facts["gpu"] is None) == (not torch.cuda.is_available())


# --- chapter support (negspike.book.start_chapter, negspike.plots.zoom_on_ann) ---

def test_start_chapter_takes_the_environment_profile_and_writes_under_it(monkeypatch, tmp_path):
    import negspike.results
    from negspike.book import start_chapter

    monkeypatch.setattr(negspike.results, "RESULTS_DIR", tmp_path)
    monkeypatch.setenv("NEGSPIKE_PROFILE", "smoke")
    ch = start_chapter("if_neuron", "quick")  # nbval sets the variable: it wins over the parameter
    assert ch.profile == "smoke" and ch.prof.name == "smoke"
    assert ch.results == tmp_path / "smoke" and ch.results.is_dir()
    monkeypatch.delenv("NEGSPIKE_PROFILE")
    assert start_chapter("if_neuron", "quick").profile == "quick"
    assert "profile `quick`" in start_chapter("if_neuron", "quick").run_times()


def test_zoom_on_ann_starts_where_every_curve_stays_near_the_ann():
    import matplotlib.pyplot as plt
    import pandas as pd

    from negspike.plots import zoom_figure, zoom_on_ann

    wide = pd.DataFrame({"a": [0.1, 0.5, 0.88, 0.89, 0.90], "b": [0.2, 0.86, 0.80, 0.895, 0.91]}, index=range(1, 6))
    fig, ax_full, ax = zoom_figure()
    for a in (ax_full, ax):
        for c in wide:
            a.plot(wide.index, 100 * wide[c], label=c)
    T_zoom = zoom_on_ann(ax_full, ax, wide, 0.9, 5, "from {T_zoom}")
    assert T_zoom == 4  # b is 10 points below the ANN at T = 3
    lo, hi = ax.get_ylim()
    assert lo < 89 < 91 < hi and lo > 80  # the curves from T = 4 and the ANN, not the early points
    assert ax.get_title() == "from 4" and ax_full.get_ylim() == (0, 100)
    plt.close(fig)
