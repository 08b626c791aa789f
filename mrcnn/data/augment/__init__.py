"""Training augmentation that keeps image, masks, boxes and window aligned.

Augmenters transform a `Sample` (image + instances + window) in place of the
Matterport-style ``(image, masks)`` pair, so the masks never have to exist as
a full [H, W, N] stack: geometric transforms move the compact instance
representation of `mrcnn.data.masks.instances` together with the image.

Built-in augmenters (the set of the DSB 2018 3rd-place solution, seed 002,
plus random crops as in seed 003)::

    from mrcnn.data import augment as A
    augmentation = A.Compose([
        A.ScaleCrop(256, scale=(0.75, 1.33), aspect=(0.9, 1.1)),  # zoom, stretch, crop
        A.Fliplr(), A.Flipud(), A.Rot90(),
        A.Sometimes(0.5, A.Rotate(15)),
        A.Brightness(15), A.Contrast((0.85, 1.15)), A.ChannelShift(10),
    ])
    model.train(..., augmentation=augmentation)   # with IMAGE_SHAPE 256 x 256

`cell_augmentation(crop_size=256)` builds that list. Every augmenter is also
callable the Matterport way, ``image, masks = aug(image, masks, rng)`` with
bool [H, W, N] masks. With IMAGE_RESIZE_MODE "crop" the generator takes its
random IMAGE_MIN_DIM crop after the augmentation (crop early with
`RandomCrop`/`ScaleCrop` to save work on large images).

Each augmenter has a `kind`: PHOTOMETRIC (image values only), DIHEDRAL
(flips and 90-degree rotations: exact on cached box mini masks, so the
generator keeps its fastest path) or RESAMPLE (crops, rotations, scaling,
user augmenters: the generator keeps full-resolution instance layers).

User augmenters are wrapped by `as_augmenter` (adapters in
`mrcnn.data.augment.adapters`):
- an imgaug augmenter (anything with ``to_deterministic`` and
  ``augment_image``), applied as Matterport did; imgaug is never imported
  here, only used when the object comes from it;
- an albumentations transform or Compose (its module is
  ``albumentations``), fed the instance label layers as ``masks``, so its
  nearest-neighbour mask interpolation keeps every instance exact;
- any callable ``(image, masks, rng) -> (image, masks)``.
Instances that leave the image are dropped after augmentation.

Seed 000's deterministic alternative, dataset entries that enumerate flip
variants, is `add_flip_variants`; the generator applies the flips while
preparing a sample, so the cache stores each variant once.

Modules:
- `base`: `Sample`, the `Augmenter` base class, the kinds, argument checks;
- `geometric`: `Fliplr`, `Flipud`, `Rot90`, `Rotate`, `RandomScale`,
  `RandomCrop`, `ScaleCrop`;
- `photometric`: `Brightness`, `Contrast`, `ChannelShift`;
- `adapters`: imgaug, albumentations and plain-function augmenters;
- `combinators`: `Compose`, `Sometimes`, `OneOf`, `as_augmenter`;
- `presets`: `cell_augmentation`, `geometric_augmentation`, `add_flip_variants`, `FLIP_KEYS`.
"""

from mrcnn.data.augment.adapters import AlbumentationsAdapter, CallableAdapter, ImgaugAdapter
from mrcnn.data.augment.base import DIHEDRAL, PHOTOMETRIC, RESAMPLE, Augmenter, Sample
from mrcnn.data.augment.combinators import Compose, OneOf, Sometimes, as_augmenter
from mrcnn.data.augment.geometric import (Fliplr, Flipud, RandomCrop, RandomScale, Rot90,
                                          Rotate, ScaleCrop)
from mrcnn.data.augment.photometric import Brightness, ChannelShift, Contrast
from mrcnn.data.augment.presets import (FLIP_KEYS, add_flip_variants, cell_augmentation,
                                        geometric_augmentation)

__all__ = [
    "PHOTOMETRIC", "DIHEDRAL", "RESAMPLE", "Sample", "Augmenter", "Compose", "Sometimes",
    "OneOf", "Fliplr", "Flipud", "Rot90", "Rotate", "RandomScale", "RandomCrop", "ScaleCrop",
    "Brightness", "Contrast", "ChannelShift", "as_augmenter", "cell_augmentation",
    "geometric_augmentation", "add_flip_variants", "FLIP_KEYS", "AlbumentationsAdapter",
    "CallableAdapter", "ImgaugAdapter",
]
