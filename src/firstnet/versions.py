"""The versions of Python, firstnet and the packages that decide a run's numbers, as a run records them."""

import importlib.metadata
import platform

from firstnet import __version__

# Versions that decide the numbers: the same seed reproduces a run only with the same ones. TensorFlow's CPU
# build installs as tensorflow-cpu, so both names are looked up.
PACKAGES = ("keras", "numpy", "jax", "jaxlib", "tensorflow", "tensorflow-cpu", "torch")


def installed():
    """The versions of Python, firstnet and each installed package of PACKAGES."""
    found = {"python": platform.python_version(), "firstnet": __version__}
    for package in PACKAGES:
        try:
            found[package.replace("-cpu", "")] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            continue
    return found
