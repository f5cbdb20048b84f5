"""The first layer's weights, one 28x28 image per hidden unit: what each unit looks for in a digit."""

import numpy as np

from firstnet import plots


def weights_figure(kernel, units=range(16), initial_kernel=None, initial_note="replayed from the seed"):
    """Some hidden units' incoming weights as 28x28 images; with `initial_kernel`, also what training changed."""
    plt = plots._pyplot()
    units = list(units)
    rows = [("trained weight", kernel)] + ([("change in training", kernel - initial_kernel)] if initial_kernel is not None else [])
    columns = 8
    row_count = -(-len(units) // columns)
    figure, axes_grid = plt.subplots(row_count * len(rows), columns, figsize=(1.6 * columns + 1.2, 1.75 * row_count * len(rows) + 0.8),
                                     squeeze=False)
    for block, (what, weights) in enumerate(rows):
        limit = float(np.abs(weights[:, units]).max()) or 1.0
        block_axes = axes_grid[block * row_count : (block + 1) * row_count]
        for position, axes in enumerate(block_axes.flat):
            axes.set_xticks([])
            axes.set_yticks([])
            if position >= len(units):
                axes.axis("off")
                continue
            shown = axes.imshow(weights[:, units[position]].reshape(28, 28), cmap="RdBu_r", vmin=-limit, vmax=limit)
            axes.set_title(f"unit {units[position]}", fontsize=8)
        figure.colorbar(shown, ax=list(block_axes.flat), fraction=0.02, pad=0.02, label=what)
    subtitle = (f"top: trained weights; bottom: trained minus the initial weights ({initial_note})"
                if initial_kernel is not None else "trained weights")
    figure.suptitle(f"first-layer weights of hidden units {units[0]}..{units[-1]}, one 28x28 image per unit "
                    f"(red: ink there raises the unit, blue lowers it)\n{subtitle}")
    return figure
