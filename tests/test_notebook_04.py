"""notebooks/04_what_deep_learning_is_not.ipynb runs top to bottom and shows the four points on real MNIST."""

import pathlib
import re

import nbformat
import pytest
from nbclient import NotebookClient

pytestmark = pytest.mark.notebook

NOTEBOOK = pathlib.Path(__file__).resolve().parents[1] / "notebooks" / "04_what_deep_learning_is_not.ipynb"


def _text(cell):
    return "".join(output.get("text", "") + output.get("data", {}).get("text/plain", "")
                   for output in cell.get("outputs", []))


def test_notebook_is_stored_without_outputs_and_uses_the_library():
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(notebook)
    code = "\n".join(cell.source for cell in notebook.cells if cell.cell_type == "code")
    assert all(not cell.outputs for cell in notebook.cells if cell.cell_type == "code")
    for call in ("fool.fool(", "abstain.fit_rule(", "abstain.answer(", "explain.explain(", "explain.score_gradients(",
                 "collection.shifted_digits(", "evaluate.evaluate_model(", "calibration.confusion_cell("):
        assert call in code, call


def test_notebook_shows_the_four_points(tmp_path):
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(notebook, timeout=900, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = "\n".join(_text(cell) for cell in notebook.cells if cell.cell_type == "code")
    fooled = re.search(r"read as 7 \(([0-9.]+)%\); changed by at most (\d+) of 255 per pixel .*, it is read as 3", outputs)
    assert fooled and int(fooled[2]) <= 64, outputs
    assert float(re.search(r"answers ([0-9.]+)% of MNIST's test digits", outputs)[1]) >= 98.5, outputs
    assert float(re.search(r"by hand and by autodiff: ([0-9.e+-]+)", outputs)[1]) < 1e-4, outputs
    shares, change = map(float, re.search(r"shares add up to (-?[0-9.]+); the score changed by (-?[0-9.]+)", outputs).groups())
    assert abs(shares - change) <= 0.02 * abs(change) + 0.02, outputs
    mnist, ours = map(float, re.search(r"on MNIST's test digits ([0-9.]+)%, on other writers' ([0-9.]+)%", outputs).groups())
    assert ours < mnist - 5, outputs
    figures = [output for cell in notebook.cells for output in cell.get("outputs", []) if "image/png" in output.get("data", {})]
    assert len(figures) >= 5
    assert not list(tmp_path.iterdir()), "the notebook writes its run and figures into a temporary folder"
