"""Ready-made augmentation: the DSB 2018 3rd-place set, Cellpose's geometric set, flip variants.

- `cell_augmentation`: random scale + crop, flips, rotations and photometric
  changes (seed 002's list), as one `Compose`.
- `geometric_augmentation`: a random scale, flips, 90-degree turns and a
  rotation by any angle, no change of the pixel values (what Cellpose's
  training draws for every crop).
- `add_flip_variants`: seed 000's deterministic alternative; each dataset
  entry is repeated with the `FLIP_KEYS` flags set, and the generator flips
  such entries while preparing them (so the cache stores each variant once).
"""

from mrcnn.data.augment.base import check_size
from mrcnn.data.augment.combinators import Compose, Sometimes
from mrcnn.data.augment.geometric import Fliplr, Flipud, RandomScale, Rot90, Rotate, ScaleCrop
from mrcnn.data.augment.photometric import Brightness, ChannelShift, Contrast

__all__ = ["FLIP_KEYS", "cell_augmentation", "geometric_augmentation", "add_flip_variants"]

# image_info keys read by the generator when preparing a sample (seed 000).
FLIP_KEYS = ("vertical_flip", "horizontal_flip")


def cell_augmentation(crop_size=None, scale=(0.75, 1.33), aspect=(0.9, 1.1),
                      max_degrees=15.0, brightness=15.0, contrast=(0.85, 1.15),
                      channel_shift=10.0):
    """The DSB 2018 3rd-place augmentation set (seed 002).

    Random scale with aspect change and a random crop (when `crop_size` is
    given), flips, 90-degree rotations, small-angle rotations (half of the
    time), brightness, contrast and channel shift.

    Args:
        crop_size: int or (height, width) of the random crop, or None for no
            scaling/cropping (the image keeps its size).
        scale, aspect: ranges of `RandomScale`.
        max_degrees: range of `Rotate` (0 disables it).
        brightness, contrast, channel_shift: photometric ranges (0/None
            disables each).

    Returns:
        a `Compose`.
    """
    ops = []
    if crop_size is not None:
        ops.append(ScaleCrop(crop_size, scale, aspect))
    square = crop_size is not None and check_size(crop_size)[0] == check_size(crop_size)[1]
    # 90 and 270 degree turns only when the output is square (they swap H and W)
    ops += [Fliplr(), Flipud(), Rot90((0, 1, 2, 3) if square else (0, 2))]
    if max_degrees:
        ops.append(Sometimes(0.5, Rotate(max_degrees)))
    if brightness:
        ops.append(Brightness(brightness))
    if contrast:
        ops.append(Contrast(contrast))
    if channel_shift:
        ops.append(ChannelShift(channel_shift))
    return Compose(ops)


def geometric_augmentation(scale=(0.75, 1.33), max_degrees=180.0, quarter_turns=True):
    """Geometry only: a random scale, flips, 90-degree turns, a rotation by any angle.

    Cellpose trains every crop at a random angle and scale; this is that set
    for Mask R-CNN samples (pixel values untouched). The image changes size
    with the scale: use it where a crop follows (IMAGE_RESIZE_MODE "crop").
    The rotation keeps the size and fills the corners with zeros.

    Args:
        scale: (low, high) zoom range of `RandomScale` (drawn log-uniformly),
            or None for no scaling.
        max_degrees: rotations in [-max_degrees, max_degrees] (`Rotate`; 180:
            any angle, 0: none).
        quarter_turns: also turn by 90 and 270 degrees (they swap H and W:
            for square outputs, e.g. square crops); else 0 and 180 only.

    Returns:
        a `Compose`.
    """
    ops = [RandomScale(scale)] if scale is not None else []
    ops += [Fliplr(), Flipud(), Rot90((0, 1, 2, 3) if quarter_turns else (0, 2))]
    if max_degrees:
        ops.append(Rotate(max_degrees))
    return Compose(ops)


def add_flip_variants(dataset, variants=((False, False), (False, True), (True, False),
                                          (True, True))):
    """Register every image once per flip variant (seed 000's deterministic augmentation).

    Each image_info entry is repeated with ``vertical_flip`` and
    ``horizontal_flip`` set; the generator flips such entries while
    preparing them, so each variant is cached once and no random
    augmentation is needed. Call after the add_image calls and before
    ``prepare()``.

    Args:
        dataset: a Dataset whose images are registered but not prepared.
        variants: (vertical_flip, horizontal_flip) pairs.

    Returns:
        the dataset (modified in place): ``len(variants)`` times as many images.
    """
    if "_image_ids" in vars(dataset):
        raise ValueError("add_flip_variants must be called before dataset.prepare()")
    pairs = [(bool(v), bool(h)) for v, h in variants]
    if not pairs:
        raise ValueError("variants must list at least one (vertical_flip, horizontal_flip) pair")
    originals = list(dataset.image_info)
    dataset.image_info = [dict(info, vertical_flip=v, horizontal_flip=h)
                          for v, h in pairs for info in originals]
    return dataset
