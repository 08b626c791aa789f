"""Combining augmenters, and turning a user's `augmentation` into one.

`Compose`, `Sometimes` and `OneOf` build an augmenter out of others; their
kind is the strongest of their parts. `as_augmenter` accepts whatever a
user passes as ``augmentation`` (an `Augmenter`, a list, an imgaug or
albumentations object, a function) and the combinators wrap their parts
with it, so ``Compose([A.Fliplr(), iaa.Affine(rotate=10)])`` works.
"""

from mrcnn.data.augment.adapters import adapter_for
from mrcnn.data.augment.base import PHOTOMETRIC, Augmenter, check_probability

__all__ = ["Compose", "Sometimes", "OneOf", "as_augmenter"]


class Compose(Augmenter):
    """Apply augmenters in order."""

    def __init__(self, augmenters):
        self.augmenters = [as_augmenter(a) for a in augmenters]
        if any(a is None for a in self.augmenters):
            raise TypeError("Compose got None in its list of augmenters")

    @property
    def kind(self):
        return max((a.kind for a in self.augmenters), default=PHOTOMETRIC)

    def apply(self, sample, rng):
        for augmenter in self.augmenters:
            sample = augmenter.apply(sample, rng)
        return sample


class Sometimes(Augmenter):
    """Apply `augmenter` with probability `p`."""

    def __init__(self, p, augmenter):
        self.p = check_probability(p)
        self.augmenter = as_augmenter(augmenter)

    @property
    def kind(self):
        return self.augmenter.kind

    def apply(self, sample, rng):
        if rng.random() < self.p:
            sample = self.augmenter.apply(sample, rng)
        return sample


class OneOf(Augmenter):
    """Apply one of `augmenters`, chosen uniformly."""

    def __init__(self, augmenters):
        self.augmenters = [as_augmenter(a) for a in augmenters]
        if not self.augmenters:
            raise ValueError("OneOf needs at least one augmenter")

    @property
    def kind(self):
        return max(a.kind for a in self.augmenters)

    def apply(self, sample, rng):
        return self.augmenters[int(rng.integers(len(self.augmenters)))].apply(sample, rng)


def as_augmenter(augmentation):
    """Wrap whatever the user passed as `augmentation` into an `Augmenter`.

    Args:
        augmentation: None, an `Augmenter`, a list/tuple of augmenters
            (composed in order), an imgaug augmenter, an albumentations
            transform, or a callable ``(image, masks, rng) -> (image, masks)``
            (see `mrcnn.data.augment.adapters.adapter_for`).

    Returns:
        an `Augmenter`, or None for None.
    """
    if augmentation is None or isinstance(augmentation, Augmenter):
        return augmentation
    if isinstance(augmentation, (list, tuple)):
        return Compose(augmentation)
    adapter = adapter_for(augmentation)
    if adapter is None:
        raise TypeError(f"augmentation must be an mrcnn.data.augment.Augmenter, a list of "
                        f"them, an imgaug augmenter, an albumentations transform or a "
                        f"callable (image, masks, rng) -> (image, masks); got "
                        f"{type(augmentation).__name__}")
    return adapter
