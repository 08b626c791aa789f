"""Balanced sampling: every group of images is seen equally often per epoch.

Seed 002 (DSB 2018, 3rd place) grouped the training images by size (nine
sizes, from 1 image of 1040x1388 to 334 of 256x256) and repeated the images
of each group so that all groups have as many images as the largest one.
`BalancedSampler` builds such epoch orders for the `DataGenerator`::

    DataGenerator(train, config, sampler="size")                 # by image size
    DataGenerator(train, config, sampler="cell_type")            # by an image_info key
    DataGenerator(train, config, sampler=lambda ds, i: ...)      # by any function

Within a group every image appears ``floor`` or ``ceil(largest / size)``
times; the whole order is shuffled. Orders depend only on the rng, so they
repeat for a seed.
"""

import numpy as np

__all__ = ["BalancedSampler", "as_sampler"]


class BalancedSampler:
    """Epoch orders in which every group of images is drawn equally often.

    Args:
        by: how to group the images:
            "size": (height, width) from ``image_info`` ("height" and
                "width" entries) or, if absent, from ``dataset.load_image``
                (each image is loaded once);
            another str: that ``image_info`` key (e.g. "cell_type");
            a callable ``(dataset, image_id) -> hashable``.
    """

    def __init__(self, by="size"):
        if not (isinstance(by, str) or callable(by)):
            raise TypeError(f"by must be 'size', an image_info key or a callable "
                            f"(dataset, image_id) -> key, got {type(by).__name__}")
        self.by = by
        self._memo = None  # (dataset, group index per image, group keys)

    def __repr__(self):
        return f"BalancedSampler(by={self.by!r})"

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_memo"] = None
        return state

    def group_of(self, dataset, image_id):
        """The group key of one image."""
        if callable(self.by):
            return self.by(dataset, image_id)
        info = dataset.image_info[image_id]
        if self.by == "size":
            if "height" in info and "width" in info:
                return int(info["height"]), int(info["width"])
            return tuple(int(v) for v in np.shape(dataset.load_image(image_id))[:2])
        if self.by not in info:
            raise ValueError(f"image {image_id} ({dataset.image_reference(image_id)}) has no "
                             f"image_info key {self.by!r} to balance by; its keys are "
                             f"{sorted(info)}")
        return info[self.by]

    def groups(self, dataset):
        """Group of every image.

        Returns:
            index: int64 [num_images], the group of each image (in
                ``dataset.image_ids`` order).
            keys: list of the group keys, ``keys[index[i]]``.
        """
        if self._memo is not None and self._memo[0] is dataset:
            return self._memo[1], self._memo[2]
        ids = np.asarray(dataset.image_ids)
        lookup, keys = {}, []
        index = np.empty(len(ids), np.int64)
        for position, image_id in enumerate(ids.tolist()):
            key = self.group_of(dataset, image_id)
            try:
                index[position] = lookup.setdefault(key, len(keys))
            except TypeError:
                raise TypeError(f"group key of image {image_id} must be hashable, got "
                                f"{key!r}") from None
            if index[position] == len(keys):
                keys.append(key)
        self._memo = (dataset, index, keys)
        return index, keys

    def epoch_length(self, dataset):
        """Images per epoch: groups x size of the largest group."""
        index, keys = self.groups(dataset)
        return int(len(keys) * np.bincount(index).max()) if len(keys) else 0

    def order(self, dataset, rng):
        """A shuffled epoch order of image ids.

        Args:
            dataset: a prepared Dataset.
            rng: np.random.Generator (or seed).

        Returns:
            int64 [groups * largest group size] image ids.
        """
        rng = np.random.default_rng(rng)
        index, keys = self.groups(dataset)
        ids = np.asarray(dataset.image_ids, np.int64)
        if not len(keys):
            return ids[:0]
        target = int(np.bincount(index).max())
        parts = []
        for group in range(len(keys)):
            members = ids[index == group]
            copies = -(-target // members.size)
            # `copies` independent permutations, concatenated, cut to target.
            perms = np.argsort(rng.random((copies, members.size)), axis=1)
            parts.append(members[perms].reshape(-1)[:target])
        return rng.permutation(np.concatenate(parts))


def as_sampler(sampler):
    """None, a `BalancedSampler`, or what `BalancedSampler(by=...)` accepts."""
    if sampler is None or isinstance(sampler, BalancedSampler):
        return sampler
    if isinstance(sampler, str) or callable(sampler):
        return BalancedSampler(sampler)
    raise TypeError(f"sampler must be None, a BalancedSampler, 'size', an image_info key or "
                    f"a callable (dataset, image_id) -> key; got {type(sampler).__name__}")
