"""The names a learner can choose from (optimizers, learning rate schedules, training loops), in one place.

They live apart from Keras so that the CLI can offer them in `--help` without importing it.
"""

OPTIMIZERS = ("rmsprop", "adam", "adamw", "sgd", "adagrad", "adadelta", "adamax", "nadam", "lion")
SCHEDULES = ("constant", "cosine")
# "compiled": the fast loop (loops/compiled.py), the default where it is supported; "fit": Keras's model.fit.
LOOPS = ("compiled", "fit")
# "dense": the tutorial's network, the default; "convnet": the next lesson (model.py builds each).
MODELS = ("dense", "convnet")
# How training pictures are redrawn at random (`--augment`, augment.py): "none", the tutorial's and the dense
# network's default; "stroke", heavier or lighter strokes, the convnet's; "all", strokes and a turn, slant, size and place.
AUGMENTATIONS = ("none", "stroke", "all")
# Datasets by name (`--dataset`), through keras.datasets and its cache (data/named.py).
DATASETS = ("mnist", "fashion_mnist")
# The part of each digit of a class collection held out to score fine-tuning before and after (`train --from`).
HELD_OUT_FRACTION = 0.2
# The most hidden units a dense network may have (--hidden-units, a checkpoint's recipe, metrics.json): far beyond
# any lesson, far below what would exhaust memory, so a tampered file is refused before anything is allocated.
MAX_HIDDEN_UNITS = 65_536
