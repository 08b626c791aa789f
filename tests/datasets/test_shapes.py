"""ShapesDataset: determinism, occlusion bookkeeping and the max_overlap option."""

import numpy as np
import pytest

from mrcnn.datasets.shapes import ShapesDataset, _box_iou

# Backend-independent: the NumPy shapes generator; no Keras op.
pytestmark = pytest.mark.backend_independent


def load(**kwargs):
    ds = ShapesDataset()
    ds.load_shapes(60, 64, 64, seed=3, **kwargs)
    ds.prepare()
    return ds


def square(y, x, s):
    m = np.zeros((200, 200), bool)
    m[y - s:y + s, x - s:x + s] = True
    return m


def test_box_iou_matches_pixel_count():
    rng = np.random.default_rng(0)
    for _ in range(50):
        a = tuple(int(v) for v in rng.integers(20, 180, 2)) + (int(rng.integers(1, 20)),)
        b = tuple(int(v) for v in rng.integers(20, 180, 2)) + (int(rng.integers(1, 20)),)
        ma, mb = square(*a), square(*b)
        assert _box_iou(a, b) == pytest.approx((ma & mb).sum() / (ma | mb).sum())


def test_same_seed_same_images_and_masks_cover_visible_pixels():
    a, b = load(), load()
    for i in range(10):
        np.testing.assert_array_equal(a.load_image(i), b.load_image(i))
        masks, class_ids = a.load_mask(i)
        assert masks.shape[-1] == class_ids.shape[0]
        # occluded pixels belong to one instance only
        assert masks.sum(-1).max() <= 1
        assert np.all((class_ids >= 1) & (class_ids <= 3))


def test_max_overlap_keeps_a_subset_without_heavy_overlaps():
    free, limited = load(), load(max_overlap=0.1)
    fewer = 0
    for i in range(60):
        kept = limited.image_info[i]["shapes"]
        every = free.image_info[i]["shapes"]
        assert set(kept) <= set(every) and kept
        fewer += len(kept) < len(every)
        dims = [d for _, _, d in kept]
        for j in range(len(dims)):
            for k in range(j):
                assert _box_iou(dims[j], dims[k]) <= 0.1
    assert fewer > 0  # the option did leave shapes out


def test_bad_max_overlap():
    with pytest.raises(ValueError, match="1.5"):
        ShapesDataset().load_shapes(1, 64, 64, max_overlap=1.5)
