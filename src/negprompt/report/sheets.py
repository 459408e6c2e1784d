"""Contact sheets: a benchmark's images in a grid with their names, for review by eye (stage `sheets`)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def contact_sheet(images: list[np.ndarray], labels: list[str], path: Path, cols: int = 12, zoom: int = 2) -> None:
    """A grid of images with their names, for reviewing a benchmark role by eye."""
    rows = -(-len(images) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 0.5 * zoom, rows * 0.58 * zoom), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, im, label in zip(axes.flat, images, labels):
        ax.imshow(im, interpolation="nearest")
        ax.set_title(label[:14], fontsize=5.5 * zoom / 2 + 1, pad=1)
    fig.tight_layout(pad=0.2)
    fig.savefig(path, dpi=90)
    plt.close(fig)
