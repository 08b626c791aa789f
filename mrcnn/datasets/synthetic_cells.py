"""Synthetic phase-contrast cell images in the Sartorius competition format.

The embedded default data of `samples/cell/train.py`: no download, yet the
same files, columns and run-length encoding as the Kaggle data, so the code
that reads them (`SartoriusDataset`) is the code that reads the real data.

Each image has one cell type, as in Sartorius:

- "cort": 30-80 small round-ish cells (radius 6-12 px), bright with a dark rim.
- "shsy5y": 30-100 elongated cells (ellipses) with 1-3 thin neurite-like
  protrusions.
- "astro": 10-30 large, irregular, lobed spread cells (radius 20-40 px) of
  low contrast with a few thick processes.

Cells grow partly in clumps and may overlap a little: a new cell is redrawn
(up to 6 times, then dropped) when more than 12% of its area is already
covered by earlier cells (35% for one cell in ten). Overlapping pixels
belong to both masks, as in Sartorius' annotations. The texture imitates
phase contrast: a grey background (~128) with low-frequency illumination
changes, grain, unannotated debris specks and noise; cells with a bright
halo outside the boundary, a dark rim inside it and a textured interior.

    data_dir = ensure_synthetic_sartorius("~/.cache/mrcnn/synthetic_sartorius",
                                          n_images=40)
    ds = SartoriusDataset(); ds.load_sartorius(data_dir); ds.prepare()
"""

import csv
import json
import logging
import os
import shutil
import tempfile

import numpy as np
import scipy.ndimage
import skimage.draw

from mrcnn.data.masks.sparse import SparseMasks
from mrcnn.data.rle import rle_encode_instances
from mrcnn.datasets.sartorius import CELL_TYPES, CSV_COLUMNS

logger = logging.getLogger(__name__)

MARKER_NAME = ".synthetic_sartorius.json"
# Bump when the drawing changes so that caches written by older code are redone.
GENERATOR_VERSION = 1

# Per cell type: instance count range, and rendering contrasts (grey levels):
# interior offset range, interior texture, dark rim inside the edge, bright
# halo outside it.
_COUNTS = {"cort": (30, 80), "shsy5y": (30, 100), "astro": (10, 30)}
_LOOK = {
    "cort": dict(interior=(6, 22), texture=5.0, rim=22.0, halo=30.0),
    "shsy5y": dict(interior=(-6, 12), texture=6.0, rim=22.0, halo=40.0),
    "astro": dict(interior=(-9, -2), texture=4.5, rim=8.0, halo=16.0),
}
_MIN_AREA = 20            # pixels; smaller (mostly off-image) cells are redrawn
_MAX_OVERLAP = 0.12       # fraction of a cell's area covered by earlier cells
_LOOSE_OVERLAP = 0.35     # ... allowed for one cell in ten
_TRIES = 6
_CLUSTERING = 0.35        # chance that a cell is placed next to an earlier one
_CLUMP_SPREAD = {"cort": 14.0, "shsy5y": 18.0, "astro": 40.0}   # pixels


# ----------------------------------------------------------------------
# Cell shapes: each returns the sorted unique flat (row-major) pixel indices
# of one cell, clipped to the image.

def _radial_polygon(rng, center, radius, aspect, harmonics, amplitude, vertices):
    """Vertices (rows, cols) of a star-shaped blob r(theta) around center."""
    theta = np.linspace(0.0, 2 * np.pi, vertices, endpoint=False)
    k = np.arange(2, 2 + harmonics)[:, None]
    amps = rng.uniform(0, amplitude, (harmonics, 1)) / np.sqrt(k - 1)
    phases = rng.uniform(0, 2 * np.pi, (harmonics, 1))
    r = radius * (1.0 + np.sum(amps * np.cos(k * theta + phases), axis=0))
    r = np.maximum(r, 0.3 * radius)
    y, x = r * np.sin(theta) / np.sqrt(aspect), r * np.cos(theta) * np.sqrt(aspect)
    angle = rng.uniform(0, np.pi)
    c, s = np.cos(angle), np.sin(angle)
    return center[0] + x * s + y * c, center[1] + x * c - y * s, angle


def _thick_polyline(ys, xs, half_width):
    """Outline (rows, cols) of a polyline of constant half width.

    Each vertex is offset along the mean normal of its segments: the left
    side forward, then the right side backward, as one polygon.
    """
    dy, dx = np.diff(ys), np.diff(xs)
    norm = np.maximum(np.hypot(dy, dx), 1e-6)
    ny, nx = -dx / norm, dy / norm                       # segment normals
    vy = np.concatenate([ny[:1], (ny[:-1] + ny[1:]) / 2, ny[-1:]])
    vx = np.concatenate([nx[:1], (nx[:-1] + nx[1:]) / 2, nx[-1:]])
    scale = half_width / np.maximum(np.hypot(vy, vx), 0.5)
    vy, vx = vy * scale, vx * scale
    return (np.concatenate([ys + vy, (ys - vy)[::-1]]),
            np.concatenate([xs + vx, (xs - vx)[::-1]]))


def _process(rng, center, direction, start, length, half_width):
    """A slightly bent protrusion leaving the cell body along `direction`."""
    bend = rng.normal(0, 0.35, 2)
    angles = direction + np.concatenate([[0.0], np.cumsum(bend)])
    step = length / 3.0
    ys = center[0] + start * np.sin(direction) + np.concatenate(
        [[0.0], np.cumsum(step * np.sin(angles))])
    xs = center[1] + start * np.cos(direction) + np.concatenate(
        [[0.0], np.cumsum(step * np.cos(angles))])
    return _thick_polyline(ys, xs, half_width)


def _cell_pixels(rng, cell_type, center, shape):
    """Flat pixel indices of one cell of `cell_type` centred at `center`."""
    polygons = []
    if cell_type == "cort":
        rows, cols, _ = _radial_polygon(rng, center, rng.uniform(6, 12), rng.uniform(1.0, 1.35),
                                        harmonics=2, amplitude=0.10, vertices=24)
        polygons.append((rows, cols))
    elif cell_type == "shsy5y":
        radius = rng.uniform(5, 9)
        rows, cols, angle = _radial_polygon(rng, center, radius, rng.uniform(1.8, 3.0),
                                            harmonics=2, amplitude=0.08, vertices=24)
        polygons.append((rows, cols))
        major = radius * 1.4
        for i in range(int(rng.integers(1, 4))):
            # first two neurites leave from the ends of the long axis
            direction = (angle + np.pi * i + rng.normal(0, 0.3)) if i < 2 \
                else rng.uniform(0, 2 * np.pi)
            polygons.append(_process(rng, center, direction, 0.5 * major, rng.uniform(12, 45),
                                 half_width=rng.uniform(0.8, 1.3)))
    elif cell_type == "astro":
        radius = rng.uniform(20, 40)
        rows, cols, _ = _radial_polygon(rng, center, radius, rng.uniform(1.0, 1.6),
                                        harmonics=5, amplitude=0.45, vertices=64)
        polygons.append((rows, cols))
        for _ in range(int(rng.integers(0, 3))):
            polygons.append(_process(rng, center, rng.uniform(0, 2 * np.pi), 0.4 * radius,
                                 rng.uniform(25, 50), half_width=rng.uniform(1.5, 3.0)))
    else:
        raise ValueError(f"cell_type must be one of {CELL_TYPES}, got {cell_type!r}")
    flat = [rr * shape[1] + cc for rr, cc in
            (skimage.draw.polygon(r, c, shape=shape) for r, c in polygons)]
    return np.unique(np.concatenate(flat))


# ----------------------------------------------------------------------
# Images

def make_cell_image(rng, cell_type, height=520, width=704):
    """Draw one synthetic phase-contrast image of one cell type.

    Args:
        rng: np.random.Generator (or a seed) driving everything.
        cell_type: "astro", "cort" or "shsy5y".
        height, width: image size in pixels (Sartorius: 520 x 704).

    Returns:
        image: uint8 [H, W] grayscale.
        masks: bool [H, W, N], one channel per cell, in drawing order; masks
            may overlap a little. N may fall short of the drawn count when a
            cell finds no place after a few tries.
    """
    image, cells = _draw_cells(rng, cell_type, height, width)
    return image, _cells_to_masks(cells, image.shape)


def _draw_cells(rng, cell_type, height, width):
    """make_cell_image, with the cells as sorted flat pixel-index arrays."""
    if cell_type not in CELL_TYPES:
        raise ValueError(f"cell_type must be one of {CELL_TYPES}, got {cell_type!r}")
    if height < 32 or width < 32:
        raise ValueError(f"height and width must be at least 32 pixels, got {height}x{width}")
    rng = np.random.default_rng(rng)
    shape = (int(height), int(width))
    size = shape[0] * shape[1]
    look = _LOOK[cell_type]

    coverage = np.zeros(size, np.int16)
    interior = np.zeros(size, np.float32)     # per-cell brightness offsets
    cells, centers = [], []
    lo, hi = _COUNTS[cell_type]
    for _ in range(int(rng.integers(lo, hi + 1))):
        limit = _LOOSE_OVERLAP if rng.random() < 0.1 else _MAX_OVERLAP
        for _ in range(_TRIES):
            if centers and rng.random() < _CLUSTERING:
                # grow a clump: next to an earlier cell
                near = centers[int(rng.integers(len(centers)))]
                center = (near[0] + rng.normal(0, _CLUMP_SPREAD[cell_type]),
                          near[1] + rng.normal(0, _CLUMP_SPREAD[cell_type]))
            else:
                center = (rng.uniform(0, shape[0]), rng.uniform(0, shape[1]))
            pixels = _cell_pixels(rng, cell_type, center, shape)
            if pixels.size >= _MIN_AREA and np.count_nonzero(coverage[pixels]) \
                    <= limit * pixels.size:
                cells.append(pixels)
                centers.append(center)
                coverage[pixels] += 1
                interior[pixels] += rng.uniform(*look["interior"])
                break

    return _render(rng, coverage.reshape(shape), interior.reshape(shape), look), cells


def _cells_to_sparse(cells, height, width):
    """SparseMasks of N flat (row-major) pixel-index arrays."""
    owner = np.repeat(np.arange(len(cells)), [c.size for c in cells])
    pixels = np.concatenate(cells) if cells else np.zeros(0, np.int64)
    return SparseMasks((height, width), len(cells), owner, pixels)


def _cells_to_masks(cells, shape):
    """bool [H, W, N] from N flat pixel-index arrays."""
    masks = np.zeros((shape[0] * shape[1], len(cells)), bool)
    if cells:
        owner = np.repeat(np.arange(len(cells)), [c.size for c in cells])
        masks[np.concatenate(cells), owner] = True
    return masks.reshape(tuple(shape) + (len(cells),))


def _smooth_curve(rng, n, waves=3):
    """A random smooth 1-D curve of n samples, values around [-1, 1]."""
    t = np.linspace(0.0, np.pi, n, dtype=np.float32)[:, None]
    k = np.arange(1, waves + 1, dtype=np.float32)
    amps = rng.normal(0, 1, waves).astype(np.float32) / k
    return np.cos(t * k + rng.uniform(0, 2 * np.pi, waves).astype(np.float32)) @ amps


def _render(rng, coverage, interior, look):
    """Phase-contrast-like grey image from the cell coverage map."""
    h, w = coverage.shape
    inside = (coverage > 0).astype(np.float32)
    # Low-frequency illumination: a sum of separable smooth random curves.
    illumination = sum(np.outer(_smooth_curve(rng, h), _smooth_curve(rng, w)) for _ in range(2))
    image = 128.0 + 5.0 * illumination
    # Mottled background and unannotated debris specks.
    grain = scipy.ndimage.gaussian_filter(rng.standard_normal((h, w), dtype=np.float32), 1.2,
                                          truncate=3.0)
    grain *= 1.0 / max(float(grain.std()), 1e-6)        # unit variance
    image += 2.5 * grain
    specks = np.zeros((h, w), np.float32)
    for _ in range(int(rng.integers(15, 40))):
        rr, cc = skimage.draw.disk((rng.uniform(0, h), rng.uniform(0, w)),
                                   rng.uniform(1.0, 2.5), shape=(h, w))
        specks[rr, cc] = rng.uniform(-25, 20)
    image += specks * (1.0 - inside)
    # Halo (bright, outside the boundary) and rim (dark, inside it).
    blurred = scipy.ndimage.gaussian_filter(inside, 2.2, truncate=3.0)
    image += look["halo"] * 2.0 * blurred * (1.0 - inside)
    image -= look["rim"] * 2.0 * (1.0 - blurred) * inside
    # Textured interior: per-cell brightness plus a stronger granular texture.
    image += (interior + look["texture"] * grain) * inside
    image += 2.5 * rng.standard_normal((h, w), dtype=np.float32)
    return np.clip(np.rint(image), 0, 255).astype(np.uint8)


def synthetic_sartorius_image(seed, index, height=520, width=704):
    """The `index`-th image of the synthetic set generated with `seed`.

    Image i depends only on (seed, i, height, width), not on the number of
    images; its cell type is CELL_TYPES[i % 3].

    Returns:
        image_id: str, 12 hex digits (like Sartorius ids).
        cell_type: str.
        image: uint8 [H, W].
        masks: bool [H, W, N].
    """
    image_id, cell_type, image, cells = _synthetic_cells(seed, index, height, width)
    return image_id, cell_type, image, _cells_to_masks(cells, image.shape)


def _synthetic_cells(seed, index, height, width):
    rng = np.random.default_rng([int(seed), int(index), GENERATOR_VERSION])
    image_id = f"{int(index):04x}{int(rng.integers(2**32)):08x}"
    cell_type = CELL_TYPES[int(index) % len(CELL_TYPES)]
    image, cells = _draw_cells(rng, cell_type, height, width)
    return image_id, cell_type, image, cells


def write_synthetic_sartorius(out_dir, n_images=40, seed=0, height=520, width=704):
    """Write a synthetic data set in the Sartorius layout.

    Writes `<out_dir>/train/<id>.png` (grayscale uint8) and
    `<out_dir>/train.csv` with the competition's columns (id, annotation,
    width, height, cell_type, plate_time, sample_date, sample_id,
    elapsed_timedelta), one row per instance. Existing files of the same
    names are overwritten.

    Args:
        out_dir: directory to write into (created if needed).
        n_images: number of images (cell types cycle astro, cort, shsy5y).
        seed: seed of the generator.
        height, width: image size.

    Returns:
        list of the image ids written, in CSV order.
    """
    from PIL import Image

    if isinstance(n_images, bool) or not isinstance(n_images, (int, np.integer)) \
            or n_images < 1:
        raise ValueError(f"n_images must be a positive integer, got {n_images!r}")
    out_dir = os.fspath(out_dir)
    image_dir = os.path.join(out_dir, "train")
    os.makedirs(image_dir, exist_ok=True)
    ids = []
    with open(os.path.join(out_dir, "train.csv"), "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(CSV_COLUMNS)
        for i in range(int(n_images)):
            image_id, cell_type, image, cells = _synthetic_cells(seed, i, height, width)
            Image.fromarray(image).save(
                os.path.join(image_dir, f"{image_id}.png"), compress_level=1)
            hours = 12 * (1 + i % 8)
            meta = [f"{hours:02d}h00m00s", f"2021-01-{1 + i % 28:02d}",
                    f"{cell_type}[synthetic]_{'ABCDEFGH'[i % 8]}{1 + i % 12}_{1 + i % 4}",
                    f"{hours // 24} days {hours % 24:02d}:00:00"]
            writer.writerows([image_id, rle, width, height, cell_type] + meta
                             for rle in rle_encode_instances(_cells_to_sparse(cells, height, width)))
            ids.append(image_id)
    return ids


def ensure_synthetic_sartorius(cache_dir, n_images=40, seed=0, height=520, width=704):
    """Write the synthetic data set once into `cache_dir` and reuse it.

    A marker file (`.synthetic_sartorius.json`) records the parameters and
    the generator version; when it matches, nothing is written. Otherwise the
    set is written into a temporary sibling directory and renamed into
    place, so an interrupted run never leaves a half-written cache. A
    directory with a different marker (an older or other synthetic set) is
    replaced; a non-empty directory without a marker is never touched.

    Args:
        cache_dir: directory of the data set (e.g. "~/.cache/mrcnn/cells").
        n_images, seed, height, width: as in `write_synthetic_sartorius`.

    Returns:
        str, the data directory (cache_dir, user-expanded), ready for
        `SartoriusDataset.load_sartorius`.

    Raises:
        ValueError: cache_dir exists, is not empty and has no marker.
    """
    cache_dir = os.path.abspath(os.path.expanduser(os.fspath(cache_dir)))
    params = {"version": GENERATOR_VERSION, "n_images": int(n_images), "seed": int(seed),
              "height": int(height), "width": int(width)}
    if _marker(cache_dir) == params:
        return cache_dir
    if os.path.exists(cache_dir) and _marker(cache_dir) is None:
        if not os.path.isdir(cache_dir) or os.listdir(cache_dir):
            raise ValueError(f"{cache_dir!r} exists and is not a synthetic Sartorius cache "
                             f"(no {MARKER_NAME}); refusing to overwrite it: choose another "
                             f"cache_dir or delete it")
    parent = os.path.dirname(cache_dir)
    os.makedirs(parent, exist_ok=True)
    logger.info("writing %d synthetic Sartorius images to %s", n_images, cache_dir)
    tmp = tempfile.mkdtemp(prefix=f".{os.path.basename(cache_dir)}.tmp-", dir=parent)
    old = None
    try:
        write_synthetic_sartorius(tmp, n_images=n_images, seed=seed, height=height, width=width)
        with open(os.path.join(tmp, MARKER_NAME), "w") as f:
            json.dump(params, f)
        if os.path.isdir(cache_dir):
            if os.listdir(cache_dir):
                old = tempfile.mkdtemp(prefix=f".{os.path.basename(cache_dir)}.old-", dir=parent)
                os.replace(cache_dir, os.path.join(old, "data"))
            else:
                os.rmdir(cache_dir)
        try:
            os.rename(tmp, cache_dir)
        except OSError:
            # Another process finished first: use its copy if it matches.
            if _marker(cache_dir) != params:
                raise
        return cache_dir
    finally:
        for path in (tmp, old):
            if path is not None and os.path.isdir(path):
                shutil.rmtree(path, ignore_errors=True)


def _marker(cache_dir):
    """The parameters recorded in cache_dir's marker, or None."""
    path = os.path.join(cache_dir, MARKER_NAME)
    if not os.path.isfile(path):
        return None
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError) as error:
        logger.warning("ignoring unreadable cache marker %s (%s)", path, error)
        return {}
