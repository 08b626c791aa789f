"""Helpers of the mrcnn.visualize tests: saved and rendered pixels, test pictures.

Pixel checks draw into an Axes that fills a figure whose size is an exact
multiple of the image size (:func:`exact_axes`), so image pixel ``(r, c)``
becomes a known block of screen pixels (:func:`block`).
"""

import os

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.image import imread
from skimage.draw import ellipse

from mrcnn.visualize.figures import DPI


def png(path):
    """Saved PNG as uint8 [H, W, C]."""
    return np.rint(imread(path) * 255).astype(np.uint8)


def assert_picture(path, figsize):
    """A non-empty PNG of figsize * DPI pixels with real content."""
    assert os.path.getsize(path) > 0
    img = png(path)
    assert img.shape[:2] == (round(figsize[1] * DPI), round(figsize[0] * DPI))
    colours = np.unique(img[..., :3].reshape(-1, 3), axis=0)
    assert len(colours) > 10, f"{path} is (almost) a single colour"


def exact_axes(height, width, scale):
    """Figure of (width*scale, height*scale) pixels with one Axes filling it."""
    fig = Figure(figsize=(width * scale / DPI, height * scale / DPI), dpi=DPI)
    FigureCanvasAgg(fig)
    return fig, fig.add_axes([0, 0, 1, 1])


def render(fig):
    """The drawn figure as uint8 [H, W, 3]."""
    fig.canvas.draw()
    return np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()


def block(screen, r0, r1, c0, c1, scale):
    """Screen pixels of image rows r0:r1, cols c0:c1 (RGB)."""
    return screen[r0 * scale:r1 * scale, c0 * scale:c1 * scale, :3]


def rect_masks(shape, *regions):
    """bool [H, W, N] masks from (y1, x1, y2, x2) rectangles (y2, x2 exclusive)."""
    masks = np.zeros(shape + (len(regions),), bool)
    for k, (y1, x1, y2, x2) in enumerate(regions):
        masks[y1:y2, x1:x2, k] = True
    return masks


def box_array(regions):
    """int32 [N, (y1, x1, y2, x2)] from a list of rectangles."""
    return np.array(regions, dtype=np.int32).reshape(-1, 4)


def phase_contrast_cells(n=200, shape=(520, 704), seed=0):
    """Gray uint8 image resembling phase contrast, and bool [H, W, n] cell masks.

    Cells are ellipses (radii 6..16 px) on a jittered grid: dark interior,
    bright halo, on a gray, slowly varying, noisy background.
    """
    from scipy import ndimage
    rng = np.random.default_rng(seed)
    h, w = shape
    rows = int(np.ceil(np.sqrt(n * h / w)))
    cols = int(np.ceil(n / rows))
    gy, gx = np.meshgrid((np.arange(rows) + 0.5) * h / rows,
                         (np.arange(cols) + 0.5) * w / cols, indexing="ij")
    centres = np.stack([gy.ravel(), gx.ravel()], 1)[:n] + rng.uniform(-6, 6, (n, 2))
    masks = np.zeros((h, w, n), bool)
    for k, (cy, cx) in enumerate(centres):
        rr, cc = ellipse(cy, cx, rng.uniform(6, 16), rng.uniform(6, 16), shape=shape,
                         rotation=rng.uniform(0, np.pi))
        masks[rr, cc, k] = True
    yy, xx = np.mgrid[0:h, 0:w]
    img = 128 + 10 * np.sin(yy / 90.0) * np.cos(xx / 130.0) + rng.normal(0, 6, shape)
    cells = masks.any(axis=2)
    img[cells] -= 25
    img[ndimage.binary_dilation(cells, iterations=2) & ~cells] += 45
    return np.clip(ndimage.gaussian_filter(img, 0.8), 0, 255).astype(np.uint8), masks
