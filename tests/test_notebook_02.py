"""notebooks/02_look_inside.ipynb runs from top to bottom on the real MNIST and shows the separability numbers."""

import json
import pathlib
import re

import nbformat
import pytest
from nbclient import NotebookClient

from conftest import needs_full_mnist

pytestmark = pytest.mark.notebook

NOTEBOOK = pathlib.Path(__file__).resolve().parents[1] / "notebooks" / "02_look_inside.ipynb"


def _text(cell):
    parts = []
    for output in cell.get("outputs", []):
        parts.append(output.get("text", ""))
        parts.append(output.get("data", {}).get("text/plain", ""))
    return "".join(parts)


def test_notebook_is_stored_without_outputs():
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    code_cells = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert code_cells and all(not cell.outputs and cell.execution_count is None for cell in code_cells)


@needs_full_mnist
def test_notebook_runs_and_shows_hidden_layer_separating_better(tmp_path):
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    # As a learner opens it: in the project's notebooks/ folder (here a copy of the layout in tmp_path, so that
    # nothing is written into the repository). The kernel inherits os.environ (conftest sets FIRSTNET_DATA).
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'lesson'\n")
    (tmp_path / "notebooks").mkdir()
    NotebookClient(notebook, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(tmp_path / "notebooks")}}).execute()
    outputs = "\n".join(_text(cell) for cell in notebook.cells if cell.cell_type == "code")
    assert "(60000, 28, 28, 1)" in outputs and "(4, 10, 64, 64, 1)" in outputs
    raw = float(re.search(r"raw pixels:\s+([0-9.]+)", outputs).group(1))
    hidden = float(re.search(r"hidden layer:\s+([0-9.]+)", outputs).group(1))
    assert 0.1 < raw < hidden <= 1.0
    assert "same initial weights as the run (checked" in outputs
    images = [output for cell in notebook.cells for output in cell.get("outputs", []) if "image/png" in output.get("data", {})]
    assert len(images) >= 9, "each figure should be displayed"
    # The notebook's run was written in the project's runs/, where `firstnet runs` finds it (not notebooks/runs/),
    # with look's summary agreeing with what it printed.
    assert not (tmp_path / "notebooks" / "runs").exists()
    (run_dir,) = [path.parent for path in (tmp_path / "runs").glob("*/look.json")]
    summary = json.loads((run_dir / "look.json").read_text())
    assert round(summary["separability"]["raw"], 3) == raw and round(summary["separability"]["hidden"], 3) == hidden
