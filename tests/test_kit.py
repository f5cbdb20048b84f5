"""`firstnet kit DIR`: built here (it downloads from PyPI, through pip's cache), installed with no index in a fresh venv.

The full test takes about a minute (most of it pip installing 49 wheels on two cores); it is the only one that
needs PyPI. The others check the kit's refusals and that firstnet's wheel declares every dependency pyproject lists.
"""

import json
import os
import pathlib
import subprocess
import sys
import tomllib
import zipfile

import numpy as np
import pytest

from conftest import REPO, needs_full_mnist, run_firstnet
from firstnet import cli


def requirements_of(wheel):
    with zipfile.ZipFile(wheel) as archive:
        metadata = next(name for name in archive.namelist() if name.endswith(".dist-info/METADATA"))
        lines = archive.read(metadata).decode().splitlines()
    return normalised(line.split(":", 1)[1] for line in lines if line.startswith("Requires-Dist:") and "extra ==" not in line)


def normalised(requirements):
    """Each requirement as (name, its set of version bounds), whatever order the bounds were written in."""
    from packaging.requirements import Requirement

    return sorted((found.name.lower(), tuple(sorted(map(str, found.specifier)))) for found in map(Requirement, requirements))


# The kit is firstnet's default install (JAX): built once per CI pass that tests JAX, not again under each backend.
@pytest.mark.slow
@pytest.mark.backend("jax")
def test_the_kit_installs_firstnet_and_mnist_with_no_index_in_a_fresh_venv(tmp_path, mnist):
    kit = tmp_path / "usb"
    made = run_firstnet("kit", kit, timeout=900)
    assert made.returncode == 0, made.stderr
    wheels = sorted(path.name for path in (kit / "wheels").glob("*.whl"))
    assert any(name.startswith("firstnet-") for name in wheels) and any(name.startswith("keras-") for name in wheels)
    with np.load(kit / "mnist.npz") as copied:
        assert np.array_equal(copied["x_train"], mnist.x_train) and np.array_equal(copied["y_test"], mnist.y_test)
    # A laptop with no network: a home of its own, no FIRSTNET_DATA, and every proxy pointing nowhere.
    home = tmp_path / "laptop"
    home.mkdir()
    environment = {key: value for key, value in os.environ.items()
                   if key not in ("FIRSTNET_DATA", "KERAS_HOME", "VIRTUAL_ENV", "PYTHONPATH")}
    environment.update(HOME=str(home), PATH="/usr/bin:/bin", HTTP_PROXY="http://127.0.0.1:9",
                       HTTPS_PROXY="http://127.0.0.1:9", PYTHON=sys.executable, FIRSTNET_CACHE_DIR="off")
    installed = subprocess.run(["sh", str(kit / "install.sh"), str(home / "firstnet")], env=environment,
                               capture_output=True, text=True, timeout=900)
    assert installed.returncode == 0, installed.stderr
    assert (home / ".keras" / "datasets" / "mnist.npz").is_file()
    trained = subprocess.run([str(home / "firstnet" / ".venv" / "bin" / "firstnet"), "train", "--epochs", "1",
                              "--quiet", "--seed", "0"], cwd=home / "firstnet", env=environment,
                             capture_output=True, text=True, timeout=600)
    assert trained.returncode == 0, trained.stderr
    (metrics,) = (home / "firstnet" / "runs").glob("*/metrics.json")
    facts = json.loads(metrics.read_text())
    # It trained on all 60,000 digits, found where install.sh put them, and with the kit's firstnet, not this one.
    assert facts["train_samples"] == 60000 and facts["data_full"] and ".keras/datasets/mnist.npz" in facts["data_source"]
    where = subprocess.run([str(home / "firstnet" / ".venv" / "bin" / "python"), "-c",
                            "import firstnet; print(firstnet.__file__)"], env=environment, capture_output=True, text=True)
    assert str(home) in where.stdout and str(REPO) not in where.stdout
    again = subprocess.run(["sh", str(kit / "install.sh"), str(home / "firstnet")], env=environment,
                           capture_output=True, text=True)
    assert again.returncode == 2 and "already exists" in again.stderr


@pytest.mark.slow
@needs_full_mnist
def test_firstnets_wheel_declares_every_dependency_of_pyproject(tmp_path):
    assert cli.main(["kit", str(tmp_path / "quick"), "--no-deps"]) == 0
    (wheel,) = (tmp_path / "quick" / "wheels").glob("firstnet-*.whl")
    declared = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    assert requirements_of(wheel) == normalised(declared) and len(declared) >= 10
    kit_readme = (tmp_path / "quick" / "README.txt").read_text()
    assert "--no-deps" in kit_readme
    # The kit hands MNIST on: its README says whose it is and under which licence.
    assert "Yann LeCun" in kit_readme and "CC BY-SA 3.0" in kit_readme
    # The wheel carries firstnet's licence and the notice for the MNIST digits, and the digits with their own.
    names = zipfile.ZipFile(wheel).namelist()
    assert {"firstnet/data/mnist_5k.npz", "firstnet/data/MNIST-LICENSE.txt"} <= set(names)
    assert {"licenses/LICENSE", "licenses/NOTICE"} <= {name.split(".dist-info/", 1)[-1] for name in names}
    assert os.access(tmp_path / "quick" / "install.sh", os.X_OK)
    assert "pip install --quiet --no-index --find-links" in (tmp_path / "quick" / "install.sh").read_text()


def test_a_kit_never_overwrites_a_folder(tmp_path, capsys):
    folder = tmp_path / "full"
    folder.mkdir()
    (folder / "keep.txt").write_text("mine")
    assert cli.main(["kit", str(folder), "--no-deps"]) == 2
    error = capsys.readouterr().err
    assert "not empty" in error and len(error.strip().splitlines()) == 1
    assert [path.name for path in folder.iterdir()] == ["keep.txt"]
    assert not pathlib.Path(folder / "wheels").exists()
