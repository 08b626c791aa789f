"""Geometric test-time transforms of images and of detect() results (NumPy).

A :class:`Transform` is, in this order, a flip (:data:`FLIPS`), ``rot90``
counter-clockwise quarter turns (as ``np.rot90``) and a resize by ``scale``
(``(sy, sx)``; the transformed image is ``round(h * sy) x round(w * sx)``).
``Transform.image`` applies it to an image; ``Transform.invert`` maps the
detections made on the transformed image back to the original one, and
``Transform.result`` maps a result the other way (its inverse, for tests and
for moving ground truth along)::

    t = Transform.parse("lr-rot90-s1.25")
    r = t.invert(model.detect([t.image(image)], soft_masks=True)[0], image.shape)

Names: tokens joined by ``-``: a flip (``lr``, ``ud``, ``lrud``), a turn
(``rot90``, ``rot180``, ``rot270``) and a scale (``s1.25``, or ``s1.2x1.1``
for ``sy`` x ``sx``); ``"none"`` is the identity.

Flips and turns move pixels exactly (masks, soft masks and boxes). A resize
resamples masks bilinearly with ``skimage.transform.resize``'s pixel centres
(output pixel ``i`` samples the input at ``(i + 0.5) * in / out - 0.5``, edge
values repeated): soft masks keep their values, binary masks are the
resampled 0/1 values ``>= 0.5``; box edges scale by ``out / in`` and are
rounded. Pixel boxes are ``(y1, x1, y2, x2)`` with y2/x2 exclusive.
"""

import dataclasses
import math
import re

import numpy as np
import skimage.transform

from mrcnn.data.masks.mini import paste_values
from mrcnn.data.masks.sparse import FLIPS, SparseMasks, check_flip
from mrcnn.inference.results import from_state, to_state

__all__ = ["Transform", "ROTATIONS"]

# Counter-clockwise quarter turns, by name.
ROTATIONS = {"rot90": 1, "rot180": 2, "rot270": 3}

_SCALE = re.compile(r"s(\d+(?:\.\d*)?)(?:x(\d+(?:\.\d*)?))?")


@dataclasses.dataclass(frozen=True)
class Transform:
    """A flip, then ``rot90`` quarter turns (counter-clockwise), then a resize.

    Attributes:
        flip: one of :data:`FLIPS`.
        rot90: 0, 1, 2 or 3 counter-clockwise quarter turns (``np.rot90``).
        scale: ``(sy, sx)`` resize factors (a number means both), > 0.
    """

    flip: str = "none"
    rot90: int = 0
    scale: tuple = (1.0, 1.0)

    def __post_init__(self):
        check_flip(self.flip)
        if isinstance(self.rot90, bool) or self.rot90 not in (0, 1, 2, 3):
            raise ValueError(f"rot90 must be 0, 1, 2 or 3 quarter turns, got {self.rot90!r}")
        scale = self.scale
        if isinstance(scale, (int, float, np.number)) and not isinstance(scale, bool):
            scale = (scale, scale)
        try:
            scale = tuple(float(s) for s in scale)
        except (TypeError, ValueError):
            raise TypeError(f"scale must be a number or (sy, sx), got {self.scale!r}") from None
        if len(scale) != 2 or not all(math.isfinite(s) and s > 0 for s in scale):
            raise ValueError(f"scale must be a positive number or (sy, sx), got {self.scale!r}")
        object.__setattr__(self, "rot90", int(self.rot90))
        object.__setattr__(self, "scale", scale)

    @classmethod
    def parse(cls, name):
        """The transform of a name such as ``"lr"``, ``"rot90"``, ``"ud-rot270-s0.8"``."""
        if isinstance(name, cls):
            return name
        if not isinstance(name, str) or not name:
            raise TypeError(f"a TTA transform is a name such as 'lr', 'rot90' or "
                            f"'lr-rot90-s1.25', got {name!r}")
        flip, turns, scale = "none", 0, (1.0, 1.0)
        seen = set()
        for token in name.split("-"):
            scale_match = _SCALE.fullmatch(token)
            kind = ("flip" if token in FLIPS else "rot90" if token in ROTATIONS
                    else "scale" if scale_match else None)
            if kind is None or kind in seen:
                why = "repeats a part" if kind else f"has an unknown part {token!r}"
                raise ValueError(f"TTA transform {name!r} {why}; expected a flip "
                                 f"{FLIPS}, a turn {tuple(ROTATIONS)} and/or a scale "
                                 f"'s1.25' or 's1.2x1.1', joined by '-'")
            seen.add(kind)
            if kind == "flip":
                flip = token
            elif kind == "rot90":
                turns = ROTATIONS[token]
            else:
                sy = float(scale_match.group(1))
                scale = (sy, float(scale_match.group(2) or sy))
        return cls(flip, turns, scale)

    @property
    def name(self):
        """The name :meth:`parse` reads back (``"none"`` for the identity)."""
        parts = [] if self.flip == "none" else [self.flip]
        if self.rot90:
            parts.append(f"rot{90 * self.rot90}")
        sy, sx = self.scale
        if (sy, sx) != (1.0, 1.0):
            parts.append(f"s{sy:g}" if sy == sx else f"s{sy:g}x{sx:g}")
        return "-".join(parts) or "none"

    def __str__(self):
        return self.name

    def _turned(self, shape):
        h, w = int(shape[0]), int(shape[1])
        return (w, h) if self.rot90 % 2 else (h, w)

    def shape(self, shape):
        """``(h, w)`` of the transformed image of an image of ``shape`` ``(H, W, ...)``."""
        h, w = self._turned(shape)
        out = (int(round(h * self.scale[0])), int(round(w * self.scale[1])))
        if min(out) < 1:
            raise ValueError(f"TTA transform {self.name!r} makes a {shape[0]}x{shape[1]} "
                             f"image {out[0]}x{out[1]}: no pixel left")
        return out

    def image(self, image):
        """The transformed ``[H, W, ...]`` image (same dtype)."""
        image = np.asarray(image)
        if image.ndim < 2:
            raise ValueError(f"image must be [H, W, ...], got shape {image.shape}")
        if "lr" in self.flip:
            image = image[:, ::-1]
        if "ud" in self.flip:
            image = image[::-1]
        image = np.rot90(image, self.rot90, axes=(0, 1))
        size = Transform(scale=self.scale).shape(image.shape)     # of the turned image
        if size != image.shape[:2]:
            image = _resize_image(image, size)
        return np.ascontiguousarray(image)

    def result(self, result, shape):
        """A result on the original image (of ``shape``) moved to the transformed one."""
        state, dense = to_state(result)
        _check_frame(state, shape[:2], "the original image")
        state = _turn_state(_flip_state(state, self.flip), self.rot90)
        return from_state(_resize_state(state, self.shape(shape)), dense)

    def invert(self, result, shape):
        """A result on the transformed image moved back to the original (of ``shape``)."""
        state, dense = to_state(result)
        _check_frame(state, self.shape(shape), f"the image transformed by {self.name!r}")
        state = _resize_state(state, self._turned(shape))
        state = _turn_state(state, (4 - self.rot90) % 4)
        return from_state(_flip_state(state, self.flip), dense)


def _check_frame(state, shape, what):
    if tuple(state["masks"].shape) != tuple(int(v) for v in shape):
        raise ValueError(f"the result's masks are {state['masks'].shape[0]}x"
                         f"{state['masks'].shape[1]}, {what} is {shape[0]}x{shape[1]}")


def _resize_image(image, size):
    """Bilinear resize without anti-aliasing, edge values repeated, dtype kept."""
    out = skimage.transform.resize(image, size + image.shape[2:], order=1, mode="edge",
                                   preserve_range=True, anti_aliasing=False)
    if np.issubdtype(image.dtype, np.integer):
        info = np.iinfo(image.dtype)
        out = np.clip(np.rint(out), info.min, info.max)
    return out.astype(image.dtype)


def _map_state(state, masks_fn, rois):
    return dict(state, rois=rois, masks=masks_fn(state["masks"]),
                soft=None if state["soft"] is None else masks_fn(state["soft"]))


def _flip_state(state, flip):
    """Flipped masks, soft masks and rois (``x1' = W - x2``, ``x2' = W - x1`` for "lr")."""
    if flip == "none":
        return state
    height, width = state["masks"].shape
    rois = state["rois"].copy()
    if "lr" in flip:
        rois[:, [1, 3]] = width - state["rois"][:, [3, 1]]
    if "ud" in flip:
        rois[:, [0, 2]] = height - rois[:, [2, 0]]
    return _map_state(state, lambda m: m.flip(flip), rois)


def _turn_masks(masks, turns):
    """SparseMasks turned ``turns`` quarter turns counter-clockwise (``np.rot90``)."""
    height, width = masks.shape
    ys, xs = np.divmod(masks.pixel, width)
    for _ in range(turns):          # np.rot90: (y, x) of an h x w image -> (w - 1 - x, y)
        ys, xs = width - 1 - xs, ys
        height, width = width, height
    return SparseMasks((height, width), masks.count, masks.instance, ys * width + xs,
                       masks.value)


def _turn_state(state, turns):
    """Masks, soft masks and rois turned like ``np.rot90(image, turns)``."""
    if turns == 0:
        return state
    rois = state["rois"].astype(np.int64)
    height, width = state["masks"].shape
    for _ in range(turns):          # rows [w - x2, w - x1), columns [y1, y2)
        rois = np.stack([width - rois[:, 3], rois[:, 0], width - rois[:, 1], rois[:, 2]], 1)
        height, width = width, height
    return _map_state(state, lambda m: _turn_masks(m, turns), rois.astype(np.int32))


def _resize_masks(masks, shape):
    """SparseMasks resampled to ``shape`` (module docstring); binary: ``>= 0.5``.

    Each instance's pixels are cut out with a one-pixel margin of zeros and
    pasted into the same region of the new frame (`paste_values` with
    fractional boxes), which equals resampling the whole frame.
    """
    height, width = masks.shape
    new_h, new_w = (int(v) for v in shape)
    n = masks.count
    soft = masks.value is not None
    boxes = masks.boxes().astype(np.int64)
    crop = np.stack([np.maximum(boxes[:, 0] - 1, 0), np.maximum(boxes[:, 1] - 1, 0),
                     np.minimum(boxes[:, 2] + 1, height), np.minimum(boxes[:, 3] + 1, width)], 1)
    empty = masks.areas() == 0
    crop[empty] = [0, 0, 1, 1]                      # one zero pixel: pastes nothing
    crop_h, crop_w = crop[:, 2] - crop[:, 0], crop[:, 3] - crop[:, 1]
    sizes = crop_h * crop_w
    offsets = np.cumsum(sizes) - sizes
    flat = np.zeros(int(sizes.sum()), np.float32)
    ys, xs = np.divmod(masks.pixel, width)
    inst = masks.instance
    flat[offsets[inst] + (ys - crop[inst, 0]) * crop_w[inst] + (xs - crop[inst, 1])] = \
        masks.value if soft else 1.0
    crops = [c.reshape(h, w) for c, h, w in
             zip(np.split(flat, offsets[1:]), crop_h, crop_w)] if n else []
    factor = np.array([new_h / height, new_w / width] * 2)
    inst, ys, xs, values = paste_values(crops, crop * factor, (new_h, new_w))
    on = values > 0 if soft else values >= 0.5
    return SparseMasks.from_sorted((new_h, new_w), n, inst[on], ys[on] * new_w + xs[on],
                                   values[on] if soft else None)


def _resize_state(state, shape):
    """Masks, soft masks and rois of a state resampled to the frame ``shape``."""
    height, width = state["masks"].shape
    new_h, new_w = (int(v) for v in shape)
    if (new_h, new_w) == (height, width):
        return state
    factor = np.array([new_h / height, new_w / width] * 2)
    limits = np.array([new_h, new_w] * 2)
    rois = np.clip(np.round(state["rois"] * factor), 0, limits).astype(np.int32)
    return _map_state(state, lambda m: _resize_masks(m, (new_h, new_w)), rois)
