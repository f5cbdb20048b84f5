"""notebooks/03_our_handwriting.ipynb runs top to bottom: the bias is measured, and fine-tuning reduces it."""

import pathlib
import re

import nbformat
import pytest
from nbclient import NotebookClient

from conftest import needs_full_mnist

pytestmark = pytest.mark.notebook

NOTEBOOK = pathlib.Path(__file__).resolve().parents[1] / "notebooks" / "03_our_handwriting.ipynb"


def _text(cell):
    return "".join(output.get("text", "") + output.get("data", {}).get("text/plain", "")
                   for output in cell.get("outputs", []))


def test_notebook_is_stored_without_outputs_and_uses_the_library():
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(notebook)
    code = "\n".join(cell.source for cell in notebook.cells if cell.cell_type == "code")
    assert all(not cell.outputs for cell in notebook.cells if cell.cell_type == "code")
    for call in ("collection.shifted_digits(", "shift.score_report(", "finetune.finetune(", "collection.write_digits("):
        assert call in code, call


@needs_full_mnist
def test_notebook_measures_the_bias_and_fine_tuning_reduces_it(tmp_path):
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = "\n".join(_text(cell) for cell in notebook.cells if cell.cell_type == "code")
    mnist, ours = (float(value) / 100 for value in
                   re.search(r"on MNIST's test digits ([0-9.]+)%, on our digits ([0-9.]+)%", outputs).groups())
    assert ours < mnist - 0.15, outputs
    before = re.search(r"before: our held-out digits ([0-9.]+)\s+MNIST's test digits ([0-9.]+)", outputs)
    after = re.search(r"after:  our held-out digits ([0-9.]+)\s+MNIST's test digits ([0-9.]+)", outputs)
    assert float(after[1]) > float(before[1]) + 0.08 and float(after[2]) >= 0.97, outputs
    figures = [output for cell in notebook.cells for output in cell.get("outputs", []) if "image/png" in output.get("data", {})]
    assert len(figures) >= 2
    assert not list(tmp_path.iterdir()), "the notebook writes its runs and collection into a temporary folder"
