"""Small configs and datasets shared by the data-pipeline tests (tests/data/)."""

import numpy as np

from mrcnn.config import Config
from mrcnn.dataset import Dataset


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


class Squares(Dataset):
    """Dark images with bright squares; masks are exactly the squares."""

    def __init__(self, count=4, height=96, width=112, seed=0, prepare=True):
        super().__init__()
        self.add_class("sq", 1, "square")
        self.add_class("sq", 2, "big")
        rng = np.random.default_rng(seed)
        for i in range(count):
            squares = []
            for _ in range(int(rng.integers(3, 7))):
                size = int(rng.integers(8, 30))
                squares.append((int(rng.integers(0, height - size)),
                                int(rng.integers(0, width - size)), size))
            self.add_image("sq", image_id=i, path=None, squares=squares,
                           height=height, width=width, cell_type="ab"[i % 2])
        if prepare:
            self.prepare()

    def load_image(self, image_id):
        info = self.image_info[image_id]
        image = np.full((info["height"], info["width"], 3), 20, np.uint8)
        for y, x, s in info["squares"]:
            image[y:y + s, x:x + s] = 200
        return image

    def load_mask(self, image_id):
        info = self.image_info[image_id]
        masks = np.zeros((info["height"], info["width"], len(info["squares"])), bool)
        for k, (y, x, s) in enumerate(info["squares"]):
            masks[y:y + s, x:x + s, k] = True
        return masks, np.array([1 + (s > 20) for _, _, s in info["squares"]], np.int32)


def make_cfg(**values):
    return type("C", (Cfg,), values)()


def smooth_image(h=100, w=200):
    """uint8 [h, w, 3] smooth colour gradients (resizing tests)."""
    yy, xx = np.mgrid[0:h, 0:w]
    r = 127 + 100 * np.sin(yy / 9.0)
    g = 127 + 100 * np.cos(xx / 13.0)
    b = (yy + xx) * 200.0 / (h + w)
    return np.stack([r, g, b], -1).round().astype(np.uint8)
