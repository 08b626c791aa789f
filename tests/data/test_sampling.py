import collections

import numpy as np
import pytest

from mrcnn.data.sampling import BalancedSampler, as_sampler
from mrcnn.dataset import Dataset

# Backend-independent: the balanced sampler over Dataset ids; no Keras op.
pytestmark = pytest.mark.backend_independent


class Groups(Dataset):
    """1 image of type a, 3 of type b, 6 of type c; sizes differ by type."""

    def __init__(self, with_size=True):
        super().__init__()
        self.add_class("g", 1, "x")
        self.loads = 0
        sizes = {"a": (1040, 1388), "b": (256, 320), "c": (256, 256)}
        for i, kind in enumerate("abbbcccccc"):
            extra = dict(height=sizes[kind][0], width=sizes[kind][1]) if with_size else {}
            self.add_image("g", image_id=i, path=None, cell_type=kind, **extra)
        self.prepare()

    def load_image(self, image_id):
        self.loads += 1
        h, w = (1040, 1388) if image_id == 0 else (256, 320) if image_id < 4 else (256, 256)
        return np.zeros((h, w, 3), np.uint8)


def test_every_group_is_seen_equally_often():
    ds = Groups()
    sampler = BalancedSampler("cell_type")
    order = sampler.order(ds, np.random.default_rng(0))
    assert sampler.epoch_length(ds) == len(order) == 3 * 6
    kinds = collections.Counter(ds.image_info[i]["cell_type"] for i in order)
    assert kinds == {"a": 6, "b": 6, "c": 6}
    per_image = collections.Counter(order.tolist())
    assert per_image[0] == 6                                   # the lone image, 6 times
    assert sorted(per_image[i] for i in (1, 2, 3)) == [2, 2, 2]
    assert all(per_image[i] == 1 for i in range(4, 10))
    # shuffled: not grouped in blocks, and repeatable for a seed
    assert not np.array_equal(order, np.sort(order))
    np.testing.assert_array_equal(order, sampler.order(ds, np.random.default_rng(0)))
    assert not np.array_equal(order, sampler.order(ds, np.random.default_rng(1)))


def test_uneven_copies_differ_by_at_most_one():
    ds = Groups()
    # groups of 4 (ids 0-3) and 6 (ids 4-9): the 4 images fill 6 slots
    sampler = BalancedSampler(lambda dataset, i: i < 4)
    counts = collections.Counter(sampler.order(ds, 3).tolist())
    assert sorted(counts[i] for i in range(4)) == [1, 1, 2, 2]
    assert sum(counts.values()) == 12


def test_size_groups_from_info_or_images():
    with_info = Groups(with_size=True)
    index, keys = BalancedSampler("size").groups(with_info)
    assert keys == [(1040, 1388), (256, 320), (256, 256)]
    np.testing.assert_array_equal(index, [0, 1, 1, 1, 2, 2, 2, 2, 2, 2])
    assert with_info.loads == 0
    without = Groups(with_size=False)
    sampler = BalancedSampler("size")
    assert sampler.groups(without)[1] == keys
    sampler.groups(without)                                    # memoized
    assert without.loads == 10


def test_bad_keys_and_arguments():
    with pytest.raises(ValueError, match="no image_info key 'stain'"):
        BalancedSampler("stain").groups(Groups())
    with pytest.raises(TypeError, match="hashable"):
        BalancedSampler(lambda ds, i: [i]).groups(Groups())
    with pytest.raises(TypeError, match="sampler must be"):
        as_sampler(3)
    assert as_sampler(None) is None
    assert as_sampler("size").by == "size"
