"""Synthetic shapes: small images of squares, circles and triangles.

The toy problem of Matterport's ``samples/shapes``: generated in memory, no
files. Used by the quick-start run, the learning test and the backend tests.
Each image has a noisy background colour and 1..max_shapes shapes of random
colour, size and position; shapes may overlap (later ones occlude earlier
ones; occluded pixels are removed from the earlier masks and instances that
become (almost) invisible are dropped).
"""

import numpy as np
import skimage.draw

from mrcnn.dataset import Dataset

SHAPES = ("square", "circle", "triangle")


def _box_iou(a, b):
    """IoU of the boxes (y - s, x - s, y + s, x + s) of two shapes' (y, x, s)."""
    (ya, xa, sa), (yb, xb, sb) = a, b
    h = max(0, min(ya + sa, yb + sb) - max(ya - sa, yb - sb))
    w = max(0, min(xa + sa, xb + sb) - max(xa - sa, xb - sb))
    inter = h * w
    return inter / (4 * sa * sa + 4 * sb * sb - inter)


class ShapesDataset(Dataset):
    """Generated shapes dataset.

    Args (of `load_shapes`):
        count: number of images.
        height, width: image size in pixels.
        seed: seed of the generator (the same seed gives the same images).
        max_shapes: most shapes per image.
        classes: which of "square", "circle", "triangle" to use (class ids 1..).
        min_size, max_size: shape radius range in pixels.
        max_overlap: when set, a shape whose square (side 2 * radius around
            its centre) has an IoU above this with the square of a shape kept
            before it is left out (Matterport's shapes use 0.3 on their
            boxes); None keeps every shape. The random draws are the same
            either way, so a seed gives the same shapes minus the left-out ones.
    """

    def load_shapes(self, count, height, width, seed=0, max_shapes=4,
                    classes=SHAPES, min_size=None, max_size=None, max_overlap=None):
        for name in classes:
            if name not in SHAPES:
                raise ValueError(f"unknown shape {name!r}; choose from {SHAPES}")
        self.shape_names = tuple(classes)
        for i, name in enumerate(self.shape_names):
            self.add_class("shapes", i + 1, name)
        if max_overlap is not None and not 0.0 <= max_overlap <= 1.0:
            raise ValueError(f"max_overlap must be in [0, 1] or None, got {max_overlap!r}")
        rng = np.random.default_rng(seed)
        min_size = min_size or max(4, min(height, width) // 16)
        max_size = max_size or max(min_size + 1, min(height, width) // 5)
        for i in range(count):
            bg = rng.integers(0, 256, 3)
            shapes = []
            for _ in range(int(rng.integers(1, max_shapes + 1))):
                shape = self.shape_names[int(rng.integers(len(self.shape_names)))]
                color = rng.integers(0, 256, 3)
                while np.abs(color.astype(int) - bg).sum() < 120:
                    color = rng.integers(0, 256, 3)
                s = int(rng.integers(min_size, max_size + 1))
                y = int(rng.integers(s, height - s))
                x = int(rng.integers(s, width - s))
                if max_overlap is not None and any(
                        _box_iou((y, x, s), dims) > max_overlap for _, _, dims in shapes):
                    continue
                shapes.append((shape, tuple(int(c) for c in color), (y, x, s)))
            self.add_image("shapes", image_id=i, path=None, width=width, height=height,
                           bg_color=tuple(int(c) for c in bg), shapes=shapes,
                           noise_seed=int(rng.integers(2**31)))

    def _shape_mask(self, shape, dims, height, width):
        y, x, s = dims
        m = np.zeros((height, width), bool)
        if shape == "square":
            m[max(y - s, 0):y + s, max(x - s, 0):x + s] = True
        elif shape == "circle":
            rr, cc = skimage.draw.disk((y, x), s, shape=(height, width))
            m[rr, cc] = True
        else:
            r = s / np.sin(np.radians(60))
            rows = np.array([y - s, y + s, y + s])
            cols = np.array([x, x - r, x + r])
            rr, cc = skimage.draw.polygon(rows, cols, shape=(height, width))
            m[rr, cc] = True
        return m

    def load_image(self, image_id):
        info = self.image_info[image_id]
        h, w = info["height"], info["width"]
        rng = np.random.default_rng(info["noise_seed"])
        image = np.empty((h, w, 3), np.float32)
        image[:] = info["bg_color"]
        image += rng.normal(0, 8, (h, w, 1))
        for shape, color, dims in info["shapes"]:
            image[self._shape_mask(shape, dims, h, w)] = color
        return np.clip(image, 0, 255).astype(np.uint8)

    def load_mask(self, image_id):
        info = self.image_info[image_id]
        h, w = info["height"], info["width"]
        shapes = info["shapes"]
        if not shapes:
            return np.zeros((h, w, 0), bool), np.zeros(0, np.int32)
        masks = np.stack([self._shape_mask(s, d, h, w) for s, _, d in shapes], axis=-1)
        # later shapes occlude earlier ones
        covered = np.zeros((h, w), bool)
        for i in range(masks.shape[-1] - 1, -1, -1):
            masks[..., i] &= ~covered
            covered |= masks[..., i]
        class_ids = np.array([self.shape_names.index(s) + 1 for s, _, _ in shapes], np.int32)
        keep = masks.sum(axis=(0, 1)) >= 10
        return masks[..., keep], class_ids[keep]

    def image_reference(self, image_id):
        info = self.image_info[image_id]
        return f"shapes image {info['id']}: " + ", ".join(s for s, _, _ in info["shapes"])
