import logging

import numpy as np
import pytest

from mrcnn.config import Config
from mrcnn.data.boxes import denorm_boxes, extract_bboxes
from mrcnn.data.generator import DataGenerator, keep_largest, load_image_gt, model_anchors
from mrcnn.data.masks import expand_mask
from mrcnn.data.molding import fit_image
from mrcnn.dataset import Dataset
from mrcnn.datasets.shapes import ShapesDataset


class Cfg(Config):
    NAME = "gen"
    NUM_CLASSES = 4
    IMAGES_PER_GPU = 2
    IMAGE_MIN_DIM = 128
    IMAGE_MAX_DIM = 128
    MAX_GT_INSTANCES = 6
    RPN_TRAIN_ANCHORS_PER_IMAGE = 64
    RPN_ANCHOR_SCALES = (8, 16, 32, 64, 128)
    MINI_MASK_SHAPE = (28, 28)
    TRAIN_ROIS_PER_IMAGE = 32
    POST_NMS_ROIS_TRAINING = 200
    PRE_NMS_LIMIT = 500
    POST_NMS_ROIS_INFERENCE = 100


@pytest.fixture(scope="module")
def shapes():
    ds = ShapesDataset()
    ds.load_shapes(6, 96, 112, seed=3)
    ds.prepare()
    return ds


def test_batch_layout_and_targets(shapes):
    cfg = Cfg()
    gen = DataGenerator(shapes, cfg, shuffle=True, seed=1)
    batch = gen[0]
    a = model_anchors(cfg).shape[0]
    assert batch["input_image"].shape == (2, 128, 128, 3)
    assert batch["input_image_meta"].shape == (2, cfg.IMAGE_META_SIZE)
    assert batch["input_rpn_match"].shape == (2, a)
    assert batch["input_rpn_bbox"].shape == (2, 64, 4)
    assert batch["input_gt_masks"].shape == (2, 28, 28, 6)
    for j in range(2):
        match = batch["input_rpn_match"][j]
        assert (match != 0).sum() <= 64 and (match == 1).sum() <= 32
        n = int((batch["input_gt_class_ids"][j] > 0).sum())
        assert n >= 1
        # gt boxes are the bounding boxes of the (expanded) mini masks
        boxes = denorm_boxes(batch["input_gt_boxes"][j, :n], (128, 128))
        full = expand_mask(boxes, batch["input_gt_masks"][j, :, :, :n], (128, 128, 3))
        ext = extract_bboxes(full)
        assert np.abs(ext - boxes).max() <= 2
        assert np.all(batch["input_gt_class_ids"][j, n:] == 0)


def test_image_placed_in_window(shapes):
    cfg = Cfg()
    image_id = 0
    image, meta, class_ids, bbox, mask = load_image_gt(shapes, cfg, image_id)
    original = shapes.load_image(image_id)
    window = meta[7:11].astype(int)
    # 96x112 scaled to fit 128 (square mode): short side 96 -> scale 128/112 for long side
    h, w = window[2] - window[0], window[3] - window[1]
    assert max(h, w) == 128 and abs(h / w - 96 / 112) < 0.02
    assert image[: window[0]].sum() == 0  # top padding is zero
    assert class_ids.shape[0] == bbox.shape[0] == mask.shape[-1]


def test_deterministic_for_seed(shapes):
    cfg = Cfg()
    a = DataGenerator(shapes, cfg, seed=7)[1]
    b = DataGenerator(shapes, cfg, seed=7)[1]
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])
    c = DataGenerator(shapes, cfg, seed=8)
    c.on_epoch_end()
    assert any(not np.array_equal(a[k], c[1][k]) for k in a)


def test_keep_largest_and_warning(caplog):
    ids = np.array([1, 2, 3], np.int32)
    bbox = np.array([[0, 0, 2, 2], [0, 0, 10, 10], [0, 0, 5, 5]], np.int32)
    mask = np.zeros((4, 4, 3), bool)
    mask[..., 1] = True
    k_ids, k_box, k_mask = keep_largest(ids, bbox, mask, 2)
    np.testing.assert_array_equal(k_ids, [2, 3])
    assert k_mask[..., 0].all()


class Crowded(Dataset):
    def __init__(self):
        super().__init__()
        self.add_class("c", 1, "dot")
        self.add_image("c", image_id=0, path=None)

    def load_image(self, image_id):
        return np.full((64, 64, 3), 100, np.uint8)

    def load_mask(self, image_id):
        m = np.zeros((64, 64, 10), bool)
        for i in range(10):
            m[i * 6:i * 6 + 2 + (i % 3), 5:10 + i] = True
        return m, np.ones(10, np.int32)


def test_more_instances_than_max_keeps_largest_and_warns(caplog):
    class C(Cfg):
        IMAGES_PER_GPU = 1
        IMAGE_MIN_DIM = 64
        IMAGE_MAX_DIM = 64
        MAX_GT_INSTANCES = 4
    ds = Crowded()
    ds.prepare()
    with caplog.at_level(logging.WARNING):
        batch = DataGenerator(ds, C())[0]
    assert (batch["input_gt_class_ids"][0] > 0).sum() == 4
    assert "keeping the 4 largest" in caplog.text


def test_fit_image_pads_to_declared_shape():
    class C(Cfg):
        IMAGE_RESIZE_MODE = "none"
        IMAGE_SHAPE = [576, 704, 3]
    img = np.ones((520, 704, 3), np.uint8)
    out, window, scale, padding, crop = fit_image(img, C())
    assert out.shape == (576, 704, 3)
    assert tuple(window) == (28, 0, 548, 704)
    assert out[:28].sum() == 0 and out[28:548].min() == 1
    with pytest.raises(ValueError, match="larger than the model input"):
        fit_image(np.ones((600, 704, 3), np.uint8), C())
