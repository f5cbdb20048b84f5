"""Check that firstnet's wheel installs beside what learners already have, changing nothing it does not have to.

    python .ci/beside.py venv VENV WHEEL
        VENV already holds the Keras, JAX, TensorFlow and NumPy of one end of the range: pip, asked to install the
        wheel there (a dry run), may add packages but must keep every version VENV holds; then `pip check` is clean.

    python .ci/beside.py learner WHEEL REQUIREMENT...
        A learner's environment that never saw firstnet: what pip installs for REQUIREMENT... alone. The same checks
        run in a venv that holds those packages' metadata only (their .dist-info folders, as pip wrote them), which
        is all pip reads of what is installed: pip decides there as it would beside the real packages, in seconds
        instead of the minutes TensorFlow takes to install.

Only pip's resolver runs (`--dry-run`), so nothing is downloaded but the packages' metadata. Runs in any Python with
pip 22.3 or newer (for `pip --python`): CI uses the JAX venv's.
"""

import json
import pathlib
import subprocess
import sys
import tempfile


def pip(python, *arguments):
    """pip's JSON answer (`--report -` or `list --format json`); a failure stops the check with pip's own words."""
    done = subprocess.run([python, "-m", "pip", *arguments], capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"beside: pip {' '.join(arguments[:2])} failed:\n{done.stdout}{done.stderr}")
    return json.loads(done.stdout) if done.stdout.strip() else {}


def normal(name):
    return name.lower().replace("_", "-").replace(".", "-")


def resolved(report):
    """{name: version} of what an install report would install."""
    return {normal(item["metadata"]["name"]): item["metadata"]["version"] for item in report.get("install", [])}


def check_venv(venv, wheel, *, what=None, metadata_only=None):
    """Install the wheel into `venv` (a dry run): no version held there may change; then `pip check` there.

    `metadata_only`, the site-packages of a venv of metadata, is given what the install adds, so that `pip check`
    judges the venv as it would be after the install.
    """
    python = str(pathlib.Path(venv) / "bin" / "python")
    held = {normal(package["name"]): package["version"]
            for package in pip(sys.executable, "--python", python, "list", "--format", "json")}
    report = pip(sys.executable, "--python", python, "install", "--dry-run", "--quiet", "--report", "-", wheel)
    wanted = resolved(report)
    changed = {name: f"{held[name]} -> {version}" for name, version in wanted.items()
               if name in held and name != "firstnet" and held[name] != version}
    if changed:
        sys.exit(f"beside: installing firstnet into {what or venv} would change {changed}")
    for item in report.get("install", []) if metadata_only else []:
        if normal(item["metadata"]["name"]) not in held:
            write_metadata(metadata_only, item["metadata"])
    check = subprocess.run([sys.executable, "-m", "pip", "--python", python, "check"], capture_output=True, text=True)
    if check.returncode != 0:
        sys.exit(f"beside: pip check in {what or venv}: {check.stdout.strip()}")
    keys = ", ".join(f"{name} {held[name]}" for name in ("keras", "jax", "tensorflow-cpu", "numpy") if name in held)
    added = sorted(set(wanted) - set(held))
    print(f"beside: {what or venv} ({keys}): firstnet's wheel changes nothing there and adds "
          f"{len(added)} package{'' if len(added) == 1 else 's'}; pip check clean")


def write_metadata(site_packages, metadata):
    """A .dist-info folder with the package's core metadata, as an installed package has: all pip reads of it."""
    folder = site_packages / f"{metadata['name'].replace('-', '_')}-{metadata['version']}.dist-info"
    folder.mkdir()
    lines = ["Metadata-Version: 2.1", f"Name: {metadata['name']}", f"Version: {metadata['version']}"]
    lines += [f"Requires-Python: {metadata['requires_python']}"] if metadata.get("requires_python") else []
    lines += [f"Provides-Extra: {extra}" for extra in metadata.get("provides_extra", [])]
    lines += [f"Requires-Dist: {requirement}" for requirement in metadata.get("requires_dist", [])]
    (folder / "METADATA").write_text("\n".join(lines) + "\n")
    (folder / "INSTALLER").write_text("pip\n")
    (folder / "RECORD").write_text("")


def check_learner(wheel, requirements):
    learner = pip(sys.executable, "install", "--dry-run", "--ignore-installed", "--quiet", "--report", "-",
                  *requirements)
    with tempfile.TemporaryDirectory(prefix="firstnet-learner-") as folder:
        venv = pathlib.Path(folder) / "venv"
        subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
        (site_packages,) = venv.glob("lib/python*/site-packages")
        for item in learner["install"]:
            write_metadata(site_packages, item["metadata"])
        check_venv(venv, wheel, what=f"a learner's venv of {' '.join(requirements)}", metadata_only=site_packages)


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "venv":
        check_venv(sys.argv[2], sys.argv[3])
    elif len(sys.argv) >= 4 and sys.argv[1] == "learner":
        check_learner(sys.argv[2], sys.argv[3:])
    else:
        sys.exit("usage: beside.py venv VENV WHEEL | beside.py learner WHEEL REQUIREMENT...")
