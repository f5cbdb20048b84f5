"""`firstnet kit DIR`: a folder for a USB stick that installs firstnet and the full MNIST on laptops with no internet.

Made once on a machine with internet, the kit holds `wheels/` (firstnet built as a wheel, and every package it
needs, downloaded by pip for this platform and this Python), `mnist.npz` (the full 70,000 digits, from where
firstnet finds them), `install.sh` and `install.ps1`, and a README.txt. On a laptop with no network, one command
(`sh install.sh`) makes a fresh virtual environment, installs firstnet into it with
`pip install --no-index --find-links wheels firstnet`, and puts MNIST in keras's cache, where firstnet finds it.

pip downloads through its own cache, so a second kit on the same machine downloads nothing again. Wheels are
specific to a platform and a Python version: the kit is for laptops like the machine that made it, and says so.
"""

import os
import pathlib
import platform
import shutil
import subprocess
import sys
import tempfile

import numpy as np

from firstnet import files
from firstnet.data import load_dataset
from firstnet.errors import UserError

INSTALL_SH = r"""#!/bin/sh
# Installs firstnet from this kit, with no network: a fresh virtual environment, the wheels, and MNIST.
# Usage: sh install.sh [FOLDER]   (default: $HOME/firstnet; PYTHON=python3.11 sh install.sh to choose a Python)
set -e
kit="$(cd "$(dirname "$0")" && pwd)"
target="${1:-$HOME/firstnet}"
python="${PYTHON:-python3}"
want="@PYTHON_VERSION@"
have="$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null || true)"
if [ "$have" != "$want" ]; then
    echo "install.sh: this kit's wheels are for Python $want; '$python' is ${have:-not found}: run PYTHON=python$want sh install.sh" >&2
    exit 2
fi
if [ -e "$target/.venv" ]; then
    echo "install.sh: $target/.venv already exists; remove it, or name another folder: sh install.sh FOLDER" >&2
    exit 2
fi
mkdir -p "$target"
"$python" -m venv "$target/.venv"
"$target/.venv/bin/python" -m pip install --quiet --no-index --find-links "$kit/wheels" firstnet
datasets="${KERAS_HOME:-$HOME/.keras}/datasets"
mkdir -p "$datasets"
if [ -e "$datasets/mnist.npz" ] && ! cmp -s "$kit/mnist.npz" "$datasets/mnist.npz"; then
    echo "install.sh: $datasets/mnist.npz exists and differs from the kit's; it is left as it is" >&2
else
    cp "$kit/mnist.npz" "$datasets/mnist.npz.part" && mv "$datasets/mnist.npz.part" "$datasets/mnist.npz"
fi
echo "firstnet is installed in $target/.venv, MNIST in $datasets/mnist.npz."
echo "next: . $target/.venv/bin/activate && cd $target && firstnet train"
"""

INSTALL_PS1 = r"""# Installs firstnet from this kit on Windows, with no network (for a kit made on Windows; its wheels are Windows').
# Usage: powershell -ExecutionPolicy Bypass -File install.ps1 [FOLDER]
param([string]$Target = "$HOME\firstnet")
$ErrorActionPreference = "Stop"
$kit = Split-Path -Parent $MyInvocation.MyCommand.Path
$python = if ($env:PYTHON) { $env:PYTHON } else { "python" }
$have = & $python -c "import sys; print('%d.%d' % sys.version_info[:2])"
if ($have -ne "@PYTHON_VERSION@") { Write-Error "this kit's wheels are for Python @PYTHON_VERSION@, not $have"; exit 2 }
if (Test-Path "$Target\.venv") { Write-Error "$Target\.venv already exists; remove it or name another folder"; exit 2 }
& $python -m venv "$Target\.venv"
& "$Target\.venv\Scripts\python.exe" -m pip install --quiet --no-index --find-links "$kit\wheels" firstnet
$kerasHome = if ($env:KERAS_HOME) { $env:KERAS_HOME } else { "$HOME\.keras" }
New-Item -ItemType Directory -Force "$kerasHome\datasets" | Out-Null
if (-not (Test-Path "$kerasHome\datasets\mnist.npz")) { Copy-Item "$kit\mnist.npz" "$kerasHome\datasets\mnist.npz" }
Write-Output "firstnet is installed in $Target\.venv; next: $Target\.venv\Scripts\activate, then firstnet train"
"""


def project_folder():
    """The folder holding firstnet's pyproject.toml (a source checkout or an editable install), or a UserError."""
    folder = pathlib.Path(__file__).resolve().parents[2]
    if not (folder / "pyproject.toml").is_file():
        raise UserError("firstnet kit builds firstnet's wheel from its source folder, and this firstnet was installed "
                        "without one: run it from a checkout (`pip install -e .` there)")
    return folder


def find_full_mnist():
    """The full MNIST where firstnet finds it ($FIRSTNET_DATA, keras's cache, or a download), as an Dataset."""
    notes = []
    dataset = load_dataset(announce=notes.append)
    if not dataset.is_full:
        raise UserError("the kit needs the full MNIST (70,000 digits) and only the bundled 5,000 were found; connect "
                        "to the internet once, or set FIRSTNET_DATA=path/to/mnist.npz, then run `firstnet kit` again")
    return dataset


def run_pip(arguments, what):
    """Run pip in this Python; a failure is one line with pip's last words."""
    done = subprocess.run([sys.executable, "-m", "pip", *arguments], capture_output=True, text=True)
    if done.returncode != 0:
        last = [line for line in (done.stderr + done.stdout).splitlines() if line.strip()][-1:] or ["no output"]
        raise UserError(f"{what} failed: {last[0].strip()}; the kit needs internet (or pip's cache) for this step")
    return done


def make_kit(folder, *, dependencies=True, announce=print):
    """Write the kit into `folder` (new or empty); returns a dict of what it holds.

    `dependencies=False` builds firstnet's own wheel only (no download): for a quick check, and the tests.
    """
    folder = pathlib.Path(folder)
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise UserError(f"{folder}: already exists and is not empty; name a new folder for the kit")
    source = project_folder()
    dataset = find_full_mnist()  # Before any download: a kit without the digits is not worth the wait.
    wheels = folder / "wheels"
    wheels.mkdir(parents=True)
    announce(f"building firstnet's wheel from {source} ...")
    with tempfile.TemporaryDirectory(prefix="firstnet-kit-") as clean:
        # From a clean copy of what the wheel is made of: setuptools reuses a build/ folder in the source, where
        # files deleted since an earlier build would still be, and would reach the laptops.
        copy = pathlib.Path(clean) / "firstnet"
        shutil.copytree(source / "src", copy / "src", ignore=_not_copied)
        for name in ("pyproject.toml", "README.md", "LICENSE", "NOTICE"):
            if (source / name).is_file() and not (source / name).is_symlink():
                shutil.copy2(source / name, copy / name)
        run_pip(["wheel", "--no-deps", "--quiet", "-w", str(wheels), str(copy)], "building firstnet's wheel")
    (own,) = sorted(wheels.glob("firstnet-*.whl"))
    if dependencies:
        announce("downloading every package firstnet needs, for this platform and Python (pip's cache is used) ...")
        run_pip(["download", "--quiet", "--only-binary=:all:", "-d", str(wheels), "--find-links", str(wheels),
                 str(own)], "downloading the packages")
        # The kit's own proof that nothing is missing: pip resolves firstnet from the wheels alone.
        run_pip(["install", "--dry-run", "--ignore-installed", "--quiet", "--no-index", "--find-links", str(wheels),
                 "firstnet"], "checking that the wheels hold every package")
    announce(f"copying MNIST from {dataset.source} ...")
    with files.atomic_path(folder / "mnist.npz") as temporary:
        with open(temporary, "wb") as stream:
            np.savez_compressed(stream, x_train=dataset.x_train, y_train=dataset.y_train, x_test=dataset.x_test,
                                y_test=dataset.y_test)
    version = "%d.%d" % sys.version_info[:2]
    files.write_text(folder / "install.sh", INSTALL_SH.replace("@PYTHON_VERSION@", version))
    os.chmod(folder / "install.sh", 0o755)
    files.write_text(folder / "install.ps1", INSTALL_PS1.replace("@PYTHON_VERSION@", version))
    held = sorted(path.name for path in wheels.glob("*.whl"))
    files.write_text(folder / "README.txt", readme(version, held, dependencies))
    return {"folder": folder, "wheels": held, "python": version, "platform": platform_name(),
            "mnist": folder / "mnist.npz", "dependencies": dependencies}


def _not_copied(folder, names):
    """What the wheel's copy leaves out: caches, build leftovers, and links, which could lead out of the source
    (copytree would copy where they lead) and would put another file's contents on every laptop."""
    skipped = set(shutil.ignore_patterns("__pycache__", "*.egg-info")(folder, names))
    return skipped | {name for name in names if os.path.islink(os.path.join(folder, name))}


def platform_name():
    return f"{platform.system()} {platform.machine()}"


def readme(version, wheels, dependencies):
    from firstnet.data.bundled import MNIST_CREDIT

    complete = ("every package firstnet needs" if dependencies else
                "firstnet's own wheel ONLY (made with --no-deps): install the other packages another way")
    return (f"firstnet classroom kit, for {platform_name()} with Python {version}.\n\n"
            f"wheels/ holds {complete} ({len(wheels)} wheel{'' if len(wheels) == 1 else 's'}); mnist.npz the full MNIST (70,000 digits).\n\n"
            "On each laptop, with no network:\n\n"
            "    sh install.sh              # Linux and macOS: firstnet in ~/firstnet/.venv, MNIST in ~/.keras/datasets\n"
            "    powershell -ExecutionPolicy Bypass -File install.ps1   # Windows, for a kit made on Windows\n\n"
            "then:  . ~/firstnet/.venv/bin/activate && cd ~/firstnet && firstnet train\n\n"
            f"mnist.npz is {MNIST_CREDIT}; firstnet is under the MIT licence.\n")
