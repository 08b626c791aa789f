import os

import numpy as np
import pytest

from mrcnn.data import cache as cache_mod
from mrcnn.data.cache import sample_key
from mrcnn.data.cache.keys import file_stamp
from mrcnn.dataset import Dataset

# Backend-independent: cache keys from Config values and file stamps; no Keras op.
pytestmark = pytest.mark.backend_independent


class Tiny(Dataset):
    def __init__(self, path=None, image_bit_depth=None):
        super().__init__(image_bit_depth=image_bit_depth)
        self.add_class("t", 1, "thing")
        self.add_image("t", image_id="a", path=path, annotations=["1 3", "7 2"],
                       extra=np.arange(4))


def test_sample_key_covers_identity_config_classes_and_file(tmp_path):
    fields = {"IMAGE_MIN_DIM": 64, "MINI_MASK_SHAPE": (28, 28)}
    ds = Tiny()
    key = sample_key(ds, 0, fields, "boxmasks")
    assert key == sample_key(Tiny(), 0, dict(fields), "boxmasks")   # stable
    assert len(key) == 32
    assert key != sample_key(ds, 0, {**fields, "IMAGE_MIN_DIM": 128}, "boxmasks")
    assert key != sample_key(ds, 0, {**fields, "MINI_MASK_SHAPE": (56, 56)}, "boxmasks")
    assert key != sample_key(ds, 0, fields, "layers")
    changed = Tiny()
    changed.image_info[0]["annotations"][1] = "7 3"
    assert key != sample_key(changed, 0, fields, "boxmasks")
    changed = Tiny()
    changed.image_info[0]["extra"][2] = 9
    assert key != sample_key(changed, 0, fields, "boxmasks")
    more_classes = Tiny()
    more_classes.add_class("t", 2, "other")
    assert key != sample_key(more_classes, 0, fields, "boxmasks")
    flipped = Tiny()
    flipped.image_info[0]["horizontal_flip"] = True
    assert key != sample_key(flipped, 0, fields, "boxmasks")
    # another conversion of the image values (12-bit, percentile) is another sample
    assert key != sample_key(Tiny(image_bit_depth=12), 0, fields, "boxmasks")
    assert sample_key(Tiny(image_bit_depth=12), 0, fields, "boxmasks") != \
        sample_key(Tiny(image_bit_depth="percentile"), 0, fields, "boxmasks")

    image = tmp_path / "a.png"
    image.write_bytes(b"12345")
    with_file = sample_key(Tiny(str(image)), 0, fields, "boxmasks")
    image.write_bytes(b"123456")                               # size (and mtime) change
    assert with_file != sample_key(Tiny(str(image)), 0, fields, "boxmasks")


def test_dataset_cache_key_overrides_image_info():
    class Custom(Tiny):
        version = 1

        def cache_key(self, image_id):
            return ("custom", image_id, self.version)

    a, b = Custom(), Custom()
    b.image_info[0]["annotations"] = []          # ignored: cache_key decides
    fields = {"F": 1}
    assert sample_key(a, 0, fields, "layers") == sample_key(b, 0, fields, "layers")
    b.version = 2
    assert sample_key(a, 0, fields, "layers") != sample_key(b, 0, fields, "layers")

    class Default(Tiny):
        def cache_key(self, image_id):
            return None                          # None: fall back to image_info

    assert sample_key(Default(), 0, fields, "layers") != sample_key(a, 0, fields, "layers")
    changed = Default()
    changed.image_info[0]["annotations"] = []
    assert sample_key(Default(), 0, fields, "layers") != sample_key(changed, 0, fields, "layers")


def test_digest_distinguishes_types_and_orders():
    d = cache_mod.digest
    assert d(1) != d(True) != d(1.0)
    assert d([1, 2]) != d([2, 1])
    assert d({"a": 1, "b": 2}) == d({"b": 2, "a": 1})
    assert d(np.arange(3, dtype=np.int32)) != d(np.arange(3, dtype=np.int64))
    assert d(np.zeros((2, 3))) != d(np.zeros((3, 2)))


def test_file_stamp_is_size_and_mtime_or_none(tmp_path):
    path = tmp_path / "f.bin"
    path.write_bytes(b"abc")
    assert file_stamp(str(path)) == (3, os.stat(path).st_mtime_ns)
    assert file_stamp(path) == file_stamp(str(path))
    assert file_stamp(str(tmp_path / "missing")) is None
    assert file_stamp(None) is None and file_stamp(12) is None
