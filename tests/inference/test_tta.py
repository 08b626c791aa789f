"""Tests for mrcnn/tta.py: flips mapped back, clustering and voting on hand cases."""

import numpy as np
import pytest
from result_helpers import make_result, region_masks

from mrcnn.inference import TTAModel, detect_tta, flip_image, flip_result, flip_tta, merge_tta

# Backend-independent: TTA flips, clustering and votes on hand-made results; no model.
pytestmark = pytest.mark.backend_independent


def test_merge_tta_votes_scores_classes_and_masks():
    base = np.zeros((12, 12), bool)
    base[2:8, 2:8] = True                                  # 36 px
    shifted = np.zeros_like(base)
    shifted[2:8, 3:9] = True                               # IoU 30/42 = 0.71
    lonely = np.zeros_like(base)
    lonely[10:12, 10:12] = True
    r1 = make_result(np.stack([base, lonely], -1), [0.9, 0.8], class_ids=[1, 1])
    r2 = make_result(np.stack([shifted], -1), [0.6], class_ids=[2])
    r3 = make_result(np.stack([base], -1), [0.2], class_ids=[2])
    out = merge_tta([r1, r2, r3])                          # min_votes = 2
    assert out["scores"].tolist() == pytest.approx([(0.9 + 0.6 + 0.2) / 3])
    # Class 1 has summed score 0.9 against 0.6 + 0.2 = 0.8 for class 2.
    assert out["class_ids"].tolist() == [1]
    # Majority vote of the three masks: base wins where 2 of 3 agree.
    votes = base.astype(int) * 2 + shifted
    np.testing.assert_array_equal(out["masks"][..., 0], votes / 3 >= 0.5)
    np.testing.assert_array_equal(out["rois"], [[2, 2, 8, 8]])
    # min_votes=1 keeps the lonely instance with score 0.8 / 3.
    out1 = merge_tta([r1, r2, r3], min_votes=1)
    assert out1["scores"].tolist() == pytest.approx([1.7 / 3, 0.8 / 3])
    # A stricter IoU threshold splits the shifted variant off (IoU 0.71).
    out2 = merge_tta([r1, r2, r3], iou_threshold=0.75, min_votes=1)
    assert out2["scores"].tolist() == pytest.approx([1.1 / 3, 0.8 / 3, 0.6 / 3])
    assert out2["class_ids"].tolist() == [1, 1, 2]


def test_merge_tta_averages_soft_masks():
    soft1 = np.zeros((4, 4, 1), np.float32)
    soft2 = np.zeros((4, 4, 1), np.float32)
    soft1[0:2, 0:2, 0] = [[1.0, 0.8], [0.6, 0.2]]
    soft2[0:2, 0:2, 0] = [[1.0, 0.6], [0.5, 0.9]]   # binary IoU 3/4
    r1 = make_result(soft1 >= 0.5, [0.9], soft=soft1)
    r2 = make_result(soft2 >= 0.5, [0.7], soft=soft2)
    out = merge_tta([r1, r2], mask_threshold=0.5)
    mean = (soft1 + soft2) / 2
    np.testing.assert_allclose(out["soft_masks"], mean, rtol=1e-6)
    np.testing.assert_array_equal(out["masks"], mean >= 0.5)
    assert out["scores"].tolist() == pytest.approx([0.8])


def test_merge_tta_one_result_per_cluster_source():
    # Two instances of the same result never merge, however much they overlap.
    a = region_masks((6, 6), np.s_[0:4, 0:4], np.s_[0:4, 0:4])
    out = merge_tta([make_result(a, [0.9, 0.8])], min_votes=1)
    assert out["scores"].tolist() == pytest.approx([0.9, 0.8])
    with pytest.raises(ValueError, match=r"min_votes must be in \[1, 1\]"):
        merge_tta([make_result(a, [0.9, 0.8])], min_votes=2)


class _BrightSpotModel:
    """Fake detector: one instance = the pixels brighter than 100."""

    def __init__(self):
        self.seen = []

    def detect(self, images):
        out = []
        for image in images:
            self.seen.append(image.copy())
            mask = image[..., 0] > 100
            out.append(make_result(mask[..., None], [0.9], class_ids=[1]))
        return out


def test_flip_tta_maps_detections_back_to_the_original_frame():
    image = np.zeros((7, 9, 3), np.uint8)
    image[1:3, 2:7] = 200
    image[1, 6] = 0                                        # asymmetric shape
    model = _BrightSpotModel()
    results = flip_tta(model, image, flips=("none", "lr", "ud", "lrud"))
    assert len(results) == 4
    np.testing.assert_array_equal(model.seen[1], image[:, ::-1])
    np.testing.assert_array_equal(model.seen[3], image[::-1, ::-1])
    truth = image[..., 0] > 100
    for r in results:
        np.testing.assert_array_equal(r["masks"][..., 0], truth)
        np.testing.assert_array_equal(r["rois"], [[1, 2, 3, 7]])
    merged = detect_tta([model, model], image, flips=("none", "lr"))
    np.testing.assert_array_equal(merged["masks"][..., 0], truth)
    assert merged["scores"].tolist() == pytest.approx([0.9])
    tta = TTAModel(model, flips=("lr",))
    np.testing.assert_array_equal(tta.detect([image])[0]["masks"][..., 0], truth)
    with pytest.raises(ValueError, match="flip must be one of"):
        flip_tta(model, image, flips=("rot90",))


def test_flip_result_mirrors_rois_and_is_its_own_inverse():
    masks = region_masks((5, 8), np.s_[0:2, 1:4])
    r = make_result(masks, [0.5])
    lr = flip_result(r, "lr")
    np.testing.assert_array_equal(lr["rois"], [[0, 4, 2, 7]])
    np.testing.assert_array_equal(lr["masks"], masks[:, ::-1])
    ud = flip_result(r, "ud")
    np.testing.assert_array_equal(ud["rois"], [[3, 1, 5, 4]])
    back = flip_result(flip_result(r, "lrud"), "lrud")
    np.testing.assert_array_equal(back["masks"], masks)
    np.testing.assert_array_equal(back["rois"], r["rois"])
    np.testing.assert_array_equal(flip_image(np.arange(6).reshape(2, 3), "lr"),
                                  [[2, 1, 0], [5, 4, 3]])


# ------------------------------------------------ variant sets, turns and scales


def test_named_variant_sets():
    from mrcnn.inference import TTA_SETS, tta_variants

    assert [t.name for t in tta_variants("flips")] == ["none", "lr", "ud"]
    dihedral = tta_variants("dihedral")
    # the 8 symmetries of the square: as arrays, 8 different images
    probe = np.arange(9).reshape(3, 3)
    assert len({t.image(probe).tobytes() for t in dihedral}) == 8 == len(dihedral)
    both = tta_variants("dihedral+scales")           # union, duplicates ("none") once
    assert [t.name for t in both] == list(TTA_SETS["dihedral"]) + ["s0.8", "s1.25"]
    assert [t.name for t in tta_variants(["lr", "rot90-s1.5"])] == ["lr", "rot90-s1.5"]
    assert [t.name for t in tta_variants("rot180")] == ["rot180"]
    with pytest.raises(ValueError, match=r"unknown TTA set 'flip' in 'dihedral\+flip'"):
        tta_variants("dihedral+flip")
    with pytest.raises(ValueError, match=r"'fancy' has an unknown part 'fancy'.*or a TTA set "
                                         r"\['dihedral', 'flips', 'scales'\]"):
        tta_variants("fancy")
    with pytest.raises(ValueError, match="at least one variant"):
        tta_variants([])


class _SoftSpotModel(_BrightSpotModel):
    """The bright-spot detector, with soft masks (value = brightness / 255) when asked."""

    def __init__(self):
        super().__init__()
        self.asked = []

    def detect(self, images, soft_masks=False, sparse=False):
        self.asked.append((soft_masks, sparse))
        out = super().detect(images)
        if soft_masks:
            for r, image in zip(out, images):
                r["soft_masks"] = np.where(r["masks"], image[..., :1] / 255.0, 0).astype(
                    np.float32)
        return out


def test_tta_results_turn_and_scale_back_to_the_original_frame():
    from mrcnn.inference import tta_results

    image = np.zeros((7, 12, 3), np.uint8)           # not square: turns change the shape
    image[1:4, 2:9] = 200
    image[1, 8] = 0
    image[2:4, 3] = 150
    truth = image[..., 0] > 100
    model = _SoftSpotModel()
    names = ["none", "rot90", "lr-rot270", "rot180", "s2", "rot90-s2"]
    results = tta_results(model, image, names, sparse=False)
    assert model.asked == [(True, True)]             # soft masks asked for
    assert [im.shape[:2] for im in model.seen] == [(7, 12), (12, 7), (12, 7), (7, 12),
                                                   (14, 24), (24, 14)]
    soft_truth = np.where(truth, image[..., 0] / 255.0, 0)
    for name, r in zip(names, results):
        np.testing.assert_array_equal(r["masks"][..., 0], truth, err_msg=name)
        np.testing.assert_array_equal(r["rois"], [[1, 2, 4, 9]], err_msg=name)
        if "s" not in name:                          # moved exactly: the same values
            np.testing.assert_allclose(r["soft_masks"][..., 0], soft_truth, rtol=1e-6)
    merged = detect_tta(model, image, names, soft_masks=True)
    np.testing.assert_array_equal(merged["masks"][..., 0], truth)
    mean = np.mean([r["soft_masks"][..., 0] for r in results], axis=0)
    np.testing.assert_allclose(merged["soft_masks"][..., 0], mean, rtol=1e-6)
    assert "soft_masks" not in detect_tta(model, image, names)


def test_tta_model_and_input_size_check():
    from mrcnn.config import Config
    from mrcnn.inference import tta_input_shape

    class NoneConfig(Config):
        NAME = "t"
        NUM_CLASSES = 2
        IMAGE_RESIZE_MODE = "none"
        IMAGE_SHAPE = [64, 128, 3]

    model = _SoftSpotModel()
    model.config = NoneConfig()
    image = np.zeros((40, 100, 3), np.uint8)
    image[5:9, 10:30] = 255
    assert tta_input_shape([image.shape], "flips") == (64, 128)
    assert tta_input_shape([image.shape, (520, 704)], "dihedral") == (704, 704)
    assert tta_input_shape([(520, 704)], "scales") == (704, 896)    # 650 x 880 at 1.25
    with pytest.raises(ValueError, match=r"TTA variant 'rot90' makes the 40x100 image 100x40, "
                                         r"larger than the model input 64x128 .*IMAGE_SHAPE "
                                         r"\[128, 128, 3\]"):
        TTAModel(model, "dihedral").detect([image])
    out = TTAModel(model, "flips").detect([image], sparse=True)[0]
    assert out["masks"].shape == (40, 100)
    np.testing.assert_array_equal(out["masks"].to_dense()[..., 0], image[..., 0] > 100)
