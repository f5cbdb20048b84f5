"""The tutorial's toy figure: a change of axes turns black-and-white points into the simple rule "x > 0"."""

import dataclasses

import numpy as np

from firstnet import plots


@dataclasses.dataclass
class ToyAxes:
    """Black and white points in the original axes, the same points in new axes, and the new axes themselves."""

    original: np.ndarray
    new: np.ndarray
    black: np.ndarray
    origin: np.ndarray
    axes: np.ndarray  # Column 0 is the new x direction, column 1 the new y direction, in original coordinates.


def toy_change_of_axes(count=60, angle_degrees=35.0, seed=0):
    """Points where no original axis separates the colours, and a rotated, shifted pair of axes where x > 0 does.

    The points are drawn in the new coordinates (black to the right of a gap, white to the left) and then placed
    in the original plane by rotating and shifting; `new` is computed back from `original`, as a learner would.
    """
    rng = np.random.default_rng(seed)
    black = np.arange(count) % 2 == 0
    across = np.where(black, rng.uniform(0.3, 2.5, count), rng.uniform(-2.5, -0.3, count))
    along = rng.uniform(-2.0, 2.0, count)
    angle = np.deg2rad(angle_degrees)
    axes = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    origin = np.array([0.8, 0.4])
    original = origin + np.stack([across, along], axis=1) @ axes.T
    new = (original - origin) @ axes
    return ToyAxes(original=original, new=new, black=black, origin=origin, axes=axes)


def best_threshold_accuracy(values, classes):
    """The best accuracy any rule "value > t" or "value < t" reaches: 1.0 means one threshold separates the classes."""
    order = np.argsort(values, kind="stable")
    ordered = np.asarray(classes, dtype=bool)[order]
    # Put the threshold after each position in turn: everything left of it is one class, everything right the other.
    positives_left = np.concatenate([[0], np.cumsum(ordered)])
    negatives_left = np.arange(len(ordered) + 1) - positives_left
    positives_right = ordered.sum() - positives_left
    negatives_right = (~ordered).sum() - negatives_left
    correct = np.maximum(negatives_left + positives_right, positives_left + negatives_right)
    return float(correct.max() / len(ordered))


def toy_figure(toy):
    """The tutorial's figure: raw data, a change of coordinates, and the better representation where x > 0 is the rule."""
    plt = plots._pyplot()
    figure, panels = plt.subplots(1, 3, figsize=(15, 5))

    def points(axes, coordinates):
        axes.scatter(*coordinates[toy.black].T, s=30, color="black", edgecolor="black", label="black points")
        axes.scatter(*coordinates[~toy.black].T, s=30, color="white", edgecolor="black", label="white points")
        axes.set_aspect("equal")
        axes.grid(alpha=0.3)

    points(panels[0], toy.original)
    panels[0].set_title("1. raw data: no rule on x or y alone\nseparates black from white")
    points(panels[1], toy.original)
    for column, name in ((0, "new x"), (1, "new y")):
        tip = toy.origin + 2.6 * toy.axes[:, column]
        panels[1].annotate("", xy=tip, xytext=toy.origin, arrowprops={"arrowstyle": "->", "color": "tab:red", "lw": 2})
        panels[1].text(*tip, name, color="tab:red", fontsize=11)
    panels[1].set_title("2. coordinate change: new axes,\nrotated and moved to fit the story the data tells")
    for axes in panels[:2]:
        axes.set_xlabel("original x")
        axes.set_ylabel("original y")
    points(panels[2], toy.new)
    panels[2].axvline(0, color="tab:red", linestyle="--")
    panels[2].set_ylim(-2.3, 2.9)
    # In the panel's own coordinates, wrapped to two lines, so the rule stays inside its panel at any data range.
    panels[2].text(0.03, 0.97, 'rule: "black points are\nsuch that x > 0"', transform=panels[2].transAxes,
                   color="tab:red", fontsize=10, va="top", ha="left",
                   bbox={"facecolor": "white", "edgecolor": "none", "alpha": 0.9})
    panels[2].set_xlabel("new x")
    panels[2].set_ylabel("new y")
    panels[2].set_title("3. better representation:\none simple rule now separates the colours")
    handles, names = panels[0].get_legend_handles_labels()
    figure.legend(handles, names, loc="lower center", ncol=2)
    figure.suptitle("the tutorial's idea: learning is finding a representation where a simple rule works")
    figure.tight_layout(rect=(0, 0.06, 1, 1))
    return figure
