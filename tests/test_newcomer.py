"""Newcomers' reports: pictures that say what they show, the runs folder notebooks use, messages said where they are."""

import pathlib

import numpy as np
import pytest

from firstnet import cli, plots, runs, runs_table


def texts_inside_the_figure(figure):
    """Each non-empty text of a figure (titles included): whether its drawn box lies within the figure's width."""
    from matplotlib.text import Text

    figure.canvas.draw()
    renderer = figure.canvas.get_renderer()
    inside = {}
    for text in figure.findobj(Text):
        if text.get_text() and text.get_visible():
            box = text.get_window_extent(renderer)
            inside[text.get_text()] = bool(box.x0 >= 0 and box.x1 <= figure.bbox.width)
    return inside


@pytest.mark.parametrize("count", [1, 2, 8])
def test_a_grid_of_few_pictures_keeps_its_whole_title(count):
    images = [np.zeros((28, 28), np.uint8)] * count
    titles = [f"seven{index}.png: 7" for index in range(count)]
    figure = plots.grid_figure(images, titles, 1, count, suptitle="what the network saw (28x28)")
    inside = texts_inside_the_figure(figure)
    assert inside["what the network saw (28x28)"] is True
    assert all(inside[title] for title in titles), inside


def test_predict_shortens_long_file_names_for_its_titles():
    assert cli.predict.short_name("seven.png") == "seven.png"
    short = cli.predict.short_name("my_handwritten_digit_photo_2026.jpg")
    assert len(short) == 14 and short.startswith("my_han") and short.endswith(".jpg") and "..." in short


def test_curves_of_a_run_stopped_in_its_first_epoch_say_so():
    empty = texts_inside_the_figure(plots.curves_figure({"loss": [], "accuracy": []}))
    assert plots.NO_CURVES_YET in empty and "stopped before the first epoch ended" in plots.NO_CURVES_YET
    drawn = plots.curves_figure({"loss": [0.3, 0.1], "accuracy": [0.9, 0.97]})
    assert plots.NO_CURVES_YET not in texts_inside_the_figure(drawn)
    assert all(axes.get_lines() for axes in drawn.axes)


def test_a_notebook_in_notebooks_saves_its_runs_in_the_project(tmp_path):
    project = tmp_path / "project"
    (project / "notebooks").mkdir(parents=True)
    (project / "pyproject.toml").write_text("[project]\nname = 'lesson'\n")
    assert runs.project_runs_folder(project / "notebooks") == project.resolve() / "runs"
    assert runs.project_runs_folder(project) == project.resolve() / "runs"
    # A folder named notebooks elsewhere (no project beside it) keeps its own runs/.
    (tmp_path / "notebooks").mkdir()
    assert runs.project_runs_folder(tmp_path / "notebooks") == (tmp_path / "notebooks").resolve() / "runs"


def test_the_notebook_trains_into_the_project_runs_folder():
    import nbformat

    notebook = nbformat.read(pathlib.Path(__file__).resolve().parents[1] / "notebooks" / "02_look_inside.ipynb", 4)
    code = "\n".join(cell.source for cell in notebook.cells if cell.cell_type == "code")
    assert "runs_root = runs.project_runs_folder()" in code and "runs_root=str(runs_root)" in code


def test_every_subcommand_is_registered_the_same_way():
    # One module per subcommand, each with its help line, its flags and its run: nothing wired in by hand.
    needed = {"show": ["4"], "predict": ["seven.png"], "kit": ["kit"], "explain": ["seven.png"],
              "fool": ["--index", "0", "--target", "3"]}
    for name, command in cli.COMMANDS.items():
        assert command.__name__ == f"firstnet.cli.{name}" and command.HELP and callable(command.add_flags)
        assert cli.build_parser().parse_args([name, *needed.get(name, [])]).handler is command.run


def test_model_line_says_which_run_answered():
    metrics = {"test_accuracy": 0.98014, "finished_at": "2026-11-24T10:15:42+01:00", "epochs": 2,
               "hidden_units": 512, "optimizer": "rmsprop", "learning_rate": 0.004000000189989805,
               "learning_rate_schedule": "cosine", "validation_split": 0.0, "batch_size": 128}
    assert runs_table.model_line("runs/x/model.keras", metrics) == (
        "model: runs/x/model.keras (test_acc 0.9801, trained 2026-11-24 10:15, the --fast recipe)")
    changed = {**metrics, "epochs": 5, "learning_rate": 0.001, "learning_rate_schedule": "constant", "hidden_units": 64}
    assert runs_table.recipe(changed) == "5 epochs, hidden 64"
    assert runs_table.model_line("a.keras", None) == "model: a.keras (no metrics.json beside it)"


def test_one_epoch_is_said_as_one_epoch():
    from firstnet import runs_table

    metrics = {"epochs": 1, "learning_rate": 0.001, "learning_rate_schedule": "constant", "hidden_units": 512}
    assert runs_table.recipe(metrics).startswith("1 epoch") and "1 epochs" not in runs_table.recipe(metrics)
