"""notebooks/01_first_neural_network.ipynb: the tutorial's raw Keras code runs top to bottom and reaches its accuracy."""

import pathlib
import re

import nbformat
import pytest
from nbclient import NotebookClient

from conftest import needs_full_mnist

pytestmark = pytest.mark.notebook

NOTEBOOK = pathlib.Path(__file__).resolve().parents[1] / "notebooks" / "01_first_neural_network.ipynb"


def outputs_text(cell):
    parts = []
    for output in cell.get("outputs", []):
        parts.append(output.get("text", ""))
        parts.append(output.get("data", {}).get("text/plain", ""))
    return "".join(parts)


def code_of(notebook):
    return "\n".join(cell.source for cell in notebook.cells if cell.cell_type == "code")


def test_notebook_is_stored_without_outputs():
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(notebook)
    code_cells = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert code_cells and all(not cell.outputs and cell.execution_count is None for cell in code_cells)


def test_notebook_shows_the_tutorials_keras_code_and_uses_firstnet_only_for_data():
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    code = code_of(notebook)
    for line in ("model = models.Sequential()",
                 "model.add(keras.Input((28 * 28,)))",
                 "model.add(layers.Dense(512, activation='relu'))",
                 "model.add(layers.Dense(10, activation='softmax'))",
                 "model.compile(optimizer='rmsprop',",
                 "loss='categorical_crossentropy',",
                 "from keras.utils import to_categorical",
                 "train_labels = to_categorical(train_labels)",
                 "model.fit(train_images, train_labels, epochs=5, batch_size=128)",
                 "test_loss, test_acc = model.evaluate(test_images, test_labels)",
                 "print('test_acc:', test_acc)",
                 "print('test_loss:', test_loss)",
                 "plt.imshow(digit, cmap=plt.cm.binary)",
                 "astype('float32') / 255"):
        assert line in code, line
    assert "input_shape" not in code
    firstnet_lines = [line for line in code.splitlines() if "firstnet" in line]
    assert firstnet_lines == ["from firstnet import data"]
    assert re.findall(r"\bdata\.\w+", code) == ["data.load_data"]
    markdown = "\n".join(cell.source for cell in notebook.cells if cell.cell_type == "markdown")
    for heading in ("Context", "What is deep learning?", "representations", "Vocabulary", "Real-world tensor data"):
        assert heading in markdown, heading
    assert "keras.Input((28 * 28,))" in markdown and "input_shape" in markdown  # The change is explained.


@needs_full_mnist
def test_notebook_runs_and_reaches_the_tutorials_accuracy(tmp_path):
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    # The kernel inherits os.environ, where conftest set FIRSTNET_DATA to the real MNIST.
    NotebookClient(notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    text = "\n".join(outputs_text(cell) for cell in notebook.cells if cell.cell_type == "code")
    assert "60000" in text and "(60000, 28, 28)" in text and "(10000, 28, 28)" in text and "(60000, 784)" in text
    test_acc = float(re.search(r"^test_acc: ([0-9.]+)$", text, re.MULTILINE).group(1))
    test_loss = float(re.search(r"^test_loss: ([0-9.]+)$", text, re.MULTILINE).group(1))
    assert test_acc >= 0.97 and 0 < test_loss < 0.1
    images = [output for cell in notebook.cells for output in cell.get("outputs", [])
              if "image/png" in output.get("data", {})]
    assert len(images) == 1, "the digit shown with imshow"
    errors = [output for cell in notebook.cells for output in cell.get("outputs", []) if output.get("output_type") == "error"]
    assert errors == []
    warnings = [output.get("text", "") for cell in notebook.cells for output in cell.get("outputs", [])
                if output.get("name") == "stderr" and "warning" in output.get("text", "").lower()]
    assert warnings == []
