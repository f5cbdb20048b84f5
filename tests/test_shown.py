"""What the page shows of the server's paths: a run by its place in the runs folder, other paths by their last part."""

import pathlib

import pytest

from firstnet.web import shown


def test_a_run_in_the_runs_folder_is_shown_by_its_place_there(tmp_path, monkeypatch):
    root = tmp_path / "school" / "runs"
    (root / "2026-12-03_101500").mkdir(parents=True)
    assert shown.shown_path(root / "2026-12-03_101500", root) == "runs/2026-12-03_101500"
    assert shown.shown_path(root / "2026-12-03_101500" / "model.keras", root) == "runs/2026-12-03_101500/model.keras"
    assert shown.shown_path(root, root) == "runs"
    # A relative runs folder (the default, `runs`) gives the same, from wherever the server was started.
    monkeypatch.chdir(tmp_path / "school")
    assert shown.shown_path("runs/2026-12-03_101500", "runs") == "runs/2026-12-03_101500"
    assert shown.shown_path(str(root / "2026-12-03_101500"), "runs") == "runs/2026-12-03_101500"
    assert shown.shown_path(None, root) is None


def test_a_path_outside_the_runs_folder_is_shown_by_its_last_part_only(tmp_path):
    root = tmp_path / "runs"
    root.mkdir()
    assert shown.shown_path(tmp_path / "home" / "ana" / "my-run", root) == "my-run"
    # A way out of the runs folder written into the path is judged where it leads.
    assert shown.shown_path(root / ".." / "secret" / "run", root) == "run"
    assert str(tmp_path) not in shown.shown_path(tmp_path / "elsewhere.keras", root)


def test_shown_text_names_the_runs_it_mentions_as_the_page_shows_them(tmp_path):
    run = tmp_path / "runs" / "2026-12-03_101500"
    text = f"trained and loaded {run}/"
    assert shown.shown_text(text, run, None, runs_root=tmp_path / "runs") == "trained and loaded runs/2026-12-03_101500/"


@pytest.mark.parametrize("text, expected", [
    ("Training Dense(512) on 60000 digits (/home/ana/data/mnist.npz): 5 epochs",
     "Training Dense(512) on 60000 digits (mnist.npz): 5 epochs"),
    ("keras download, cached at /root/.keras/datasets/mnist.npz", "keras download, cached at mnist.npz"),
    ("the class collection /srv/class/ (30 pictures)", "the class collection class (30 pictures)"),
    ("C:\\Users\\ana\\mnist.npz: not an MNIST file", "mnist.npz: not an MNIST file"),
    # What is not an absolute path stays: a web address, a run's relative name, fractions.
    ("open http://10.0.0.2:8000/docs/x", "open http://10.0.0.2:8000/docs/x"),
    ("saved runs/2026-12-03_101500/", "saved runs/2026-12-03_101500/"),
    ("epoch 1/5, step 3/469", "epoch 1/5, step 3/469"),
])
def test_without_folders_cuts_absolute_paths_to_their_last_part(text, expected):
    assert shown.without_folders(text) == expected


def test_without_folders_leaves_no_folder_of_a_real_path(tmp_path):
    path = tmp_path / "deep" / "data" / "mnist.npz"
    cut = shown.without_folders(f"could not read {path} (truncated)")
    assert cut == "could not read mnist.npz (truncated)" and str(path.parent) not in cut
    assert pathlib.Path(path).name in cut
