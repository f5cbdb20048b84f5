"""The house's layers, checked: no module imports one above it, no circles, the speed-ups reached through their seam."""

import pathlib
import shutil
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
LINT_IMPORTS = pathlib.Path(sys.executable).with_name("lint-imports")

pytestmark = pytest.mark.skipif(not LINT_IMPORTS.exists(), reason="import-linter is not installed (pip install -e '.[test]')")


def lint_imports(source):
    """lint-imports with pyproject.toml's contracts, on the firstnet package under `source`; (exit code, output)."""
    done = subprocess.run([str(LINT_IMPORTS), "--no-cache", "--no-logo", str(ROOT / "pyproject.toml")],
                          capture_output=True, text=True, cwd=ROOT, env={"PYTHONPATH": str(source), "PATH": ""},
                          timeout=120)
    return done.returncode, done.stdout + done.stderr


def test_every_contract_is_kept():
    code, output = lint_imports(ROOT / "src")
    assert code == 0, output
    assert "0 broken" in output


@pytest.mark.parametrize("importer, imported, broken", [
    ("files.py", "from firstnet import train", "firstnet.files is not allowed to import firstnet.train"),
    ("data/arrays.py", "from firstnet import cli", "firstnet.data is not allowed to import firstnet.cli"),
    ("loops/compiled.py", "from firstnet.loops.speedups import blanks", "Illegal imports of protected"),
])
def test_a_module_that_imports_one_above_it_breaks_the_build(tmp_path, importer, imported, broken):
    # The contract's own test: the same package with one import that points up (or round the seam) must fail.
    shutil.copytree(ROOT / "src" / "firstnet", tmp_path / "firstnet", ignore=shutil.ignore_patterns("__pycache__"))
    module = tmp_path / "firstnet" / importer
    module.write_text(module.read_text() + f"\n\ndef _pointing_up():\n    {imported}\n")
    code, output = lint_imports(tmp_path)
    assert code == 1 and broken in output, output
