"""firstnet: your first neural network, the Keras MNIST lesson as a library, a CLI, notebooks and a web page."""

import os

# Keras reads its backend once, at import. JAX trains this lesson fastest on a CPU, so it is the default,
# but a learner who already chose a backend keeps it.
os.environ.setdefault("KERAS_BACKEND", "jax")

__version__ = "0.1.0"
