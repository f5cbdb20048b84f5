"""The peers' virtual environments: created once under benchmarks/.envs/, reused while their requirements match."""

import json
import os
import pathlib
import subprocess
import sys

ENVS_ROOT = pathlib.Path(__file__).resolve().parent / ".envs"
MARKER = "firstnet-benchmark.json"

# What each peer needs, installed the way its users would install it. torch is pinned: this exact release installs
# as a CPU build; an unpinned torch pulls a CUDA build of several GB.
REQUIREMENTS = {
    "keras_tf": ["tensorflow", "keras"],
    "torch": ["torch==2.13.0", "numpy"],
    "numpy": ["numpy"],
    # firstnet itself on the other backends, installed as the README says (`pip install -e ".[torch]"`).
    "firstnet_torch": ["-e", f"{pathlib.Path(__file__).resolve().parents[1]}[torch]"],
    "firstnet_tensorflow": ["-e", f"{pathlib.Path(__file__).resolve().parents[1]}[tensorflow]"],
}

VERSION_PACKAGES = ("keras", "tensorflow", "torch", "numpy", "jax", "jaxlib")


def python_of(env_dir):
    return pathlib.Path(env_dir) / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def base_python():
    """The interpreter under the running virtual environment (a venv made from a venv is made from this one)."""
    return getattr(sys, "_base_executable", None) or sys.executable


def installed_versions(python):
    """The versions that decide a peer's numbers, as its own interpreter sees them."""
    script = ("import importlib.metadata as m, json, platform\n"
              "found = {'python': platform.python_version()}\n"
              f"for name in {VERSION_PACKAGES!r}:\n"
              "    try: found[name] = m.version(name)\n"
              "    except m.PackageNotFoundError: pass\n"
              "print(json.dumps(found))")
    output = subprocess.run([str(python), "-c", script], capture_output=True, text=True, check=True).stdout
    return json.loads(output.strip().splitlines()[-1])


def ensure_env(name, log=print, root=ENVS_ROOT):
    """Return the python of peer environment `name`, creating it (python -m venv, pip install) if needed."""
    requirements = REQUIREMENTS[name]
    env_dir = pathlib.Path(root) / name
    marker = env_dir / MARKER
    if marker.is_file():
        try:
            if json.loads(marker.read_text())["requirements"] == requirements and python_of(env_dir).exists():
                return python_of(env_dir)
        except (ValueError, KeyError):
            pass
    log(f"creating {env_dir} with pip install {' '.join(requirements)} (once; it is reused afterwards)")
    subprocess.run([base_python(), "-m", "venv", "--clear", str(env_dir)], check=True)
    subprocess.run([str(python_of(env_dir)), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                    *requirements], check=True)
    versions = installed_versions(python_of(env_dir))
    marker.write_text(json.dumps({"requirements": requirements, "versions": versions}, indent=2) + "\n")
    return python_of(env_dir)
