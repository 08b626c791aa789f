import logging
import os
import pickle
import re

import numpy as np
import pytest
from PIL import Image

from mrcnn.dataset import Dataset, DatasetNotPreparedError

# Backend-independent: Dataset bookkeeping (classes, ids, pickling); no Keras op.
pytestmark = pytest.mark.backend_independent


def _two_source_dataset():
    ds = Dataset()
    ds.add_class("cell", 1, "shsy5y")
    ds.add_class("cell", 2, "astro, astrocyte")
    ds.add_class("nucleus", 1, "nucleus")
    ds.add_class("cell", 1, "duplicate ignored")
    ds.add_image("cell", image_id="a1", path="/data/a1.png", height=520, width=704)
    ds.add_image("nucleus", image_id=17, path="/data/17.png")
    ds.add_image("cell", image_id="b2", path="/data/b2.png")
    return ds


def test_prepare_builds_class_and_image_tables():
    ds = _two_source_dataset()
    ds.prepare()
    assert ds.num_classes == 4
    np.testing.assert_array_equal(ds.class_ids, [0, 1, 2, 3])
    assert ds.class_names == ["BG", "shsy5y", "astro", "nucleus"]
    assert ds.num_images == 3
    np.testing.assert_array_equal(ds.image_ids, [0, 1, 2])
    assert ds.class_from_source_map == {".0": 0, "cell.1": 1, "cell.2": 2, "nucleus.1": 3}
    assert ds.image_from_source_map == {"cell.a1": 0, "nucleus.17": 1, "cell.b2": 2}
    assert ds.sources == ["", "cell", "nucleus"]
    assert ds.source_class_ids == {"": [0], "cell": [0, 1, 2], "nucleus": [0, 3]}
    assert ds.image_info[0]["height"] == 520 and ds.image_info[1]["id"] == 17
    assert ds.class_info[1] == {"source": "cell", "id": 1, "name": "shsy5y"}


def test_class_and_image_lookups():
    ds = _two_source_dataset()
    ds.prepare()
    assert ds.map_source_class_id("nucleus.1") == 3
    assert ds.get_source_class_id(2, "cell") == 2
    assert ds.get_source_class_id(3, "nucleus") == 1
    with pytest.raises(ValueError, match="belongs to source 'nucleus', not 'cell'"):
        ds.get_source_class_id(3, "cell")
    with pytest.raises(ValueError, match="unknown source class 'coco.1'"):
        ds.map_source_class_id("coco.1")
    assert ds.source_image_link(1) == "/data/17.png"
    assert ds.image_reference(2) == "/data/b2.png"
    with pytest.raises(ValueError, match=r"\[0, 3\), got 3"):
        ds.source_image_link(3)


def test_using_before_prepare_is_a_clear_error():
    ds = _two_source_dataset()
    for name in ("num_classes", "image_ids", "class_names", "num_images"):
        with pytest.raises(DatasetNotPreparedError, match=rf"{name}.*call prepare\(\)"):
            getattr(ds, name)
    with pytest.raises(RuntimeError):
        ds.num_classes
    assert not hasattr(ds, "num_classes")
    with pytest.raises(AttributeError, match="no attribute 'foo'"):
        ds.foo
    # still picklable (data-loader workers), before and after prepare
    clone = pickle.loads(pickle.dumps(ds))
    clone.prepare()
    assert clone.num_images == 3


def test_source_names_cannot_contain_dots():
    with pytest.raises(ValueError, match="without dots"):
        Dataset().add_class("my.data", 1, "x")


def test_default_load_mask_warns_and_is_empty(caplog):
    ds = _two_source_dataset()
    ds.prepare()
    with caplog.at_level(logging.WARNING):
        masks, class_ids = ds.load_mask(0)
    assert "override" in caplog.text
    assert masks.shape == (0, 0, 0) and masks.dtype == bool
    assert class_ids.shape == (0,) and class_ids.dtype == np.int32


def _write(tmp_path, name, array, mode=None):
    path = tmp_path / name
    Image.fromarray(array, mode=mode).save(path) if mode else Image.fromarray(array).save(path)
    return str(path)


def test_load_image_converts_to_rgb_uint8(tmp_path):
    rng = np.random.default_rng(0)
    gray = rng.integers(0, 256, (12, 16), dtype=np.uint8)
    rgba = rng.integers(0, 256, (12, 16, 4), dtype=np.uint8)
    rgb = rgba[..., :3].copy()
    deep = (gray.astype(np.uint16) * 257)                   # full 16-bit range
    bits12 = (gray.astype(np.uint16) * 16)                  # 12-bit data in 16-bit PNG
    ds = Dataset()
    for name, array in [("gray.png", gray), ("rgba.png", rgba), ("rgb.png", rgb),
                        ("deep.png", deep), ("bits12.png", bits12)]:
        ds.add_image("test", image_id=name, path=_write(tmp_path, name, array))
    ds.prepare()
    images = [ds.load_image(i) for i in ds.image_ids]
    for image in images:
        assert image.shape == (12, 16, 3) and image.dtype == np.uint8
    np.testing.assert_array_equal(images[0], np.repeat(gray[..., None], 3, axis=2))
    np.testing.assert_array_equal(images[1], rgb)
    np.testing.assert_array_equal(images[2], rgb)
    np.testing.assert_array_equal(images[3][..., 0], gray)
    # 12-bit data in a 16-bit PNG: by default the dtype's range (0..65535), the
    # stated bit depth maps 0..4095 (no guess from the pixel values)
    np.testing.assert_array_equal(images[4][..., 0],
                                  np.rint(gray.astype(float) * 16 * 255 / 65535).astype(np.uint8))
    twelve = Dataset(image_bit_depth=12)
    twelve.add_image("test", image_id="bits12", path=ds.image_info[4]["path"])
    twelve.prepare()
    np.testing.assert_array_equal(twelve.load_image(0)[..., 0],
                                  np.rint(gray.astype(float) * 16 * 255 / 4095).astype(np.uint8))


def test_load_image_missing_and_unreadable_files(tmp_path):
    missing = str(tmp_path / "nope.png")
    broken = tmp_path / "broken.png"
    broken.write_text("not an image")
    ds = Dataset()
    ds.add_image("test", image_id="x", path=missing)
    ds.add_image("test", image_id="y", path=str(broken))
    ds.prepare()
    with pytest.raises(FileNotFoundError) as info:
        ds.load_image(0)
    assert "image 0" in str(info.value) and missing in str(info.value)
    with pytest.raises(ValueError) as info:
        ds.load_image(1)
    assert "image 1" in str(info.value) and str(broken) in str(info.value)


def _ramp16(factor):
    base = (np.arange(24 * 32).reshape(24, 32) % 171).astype(np.uint16)
    return base * np.uint16(factor)


def test_load_image_brightness_follows_the_data_across_the_old_threshold(tmp_path):
    # x24 (max 4080) and x25 (max 4250) used to load with means ~184 and ~12
    ds = Dataset()
    for factor in (24, 25):
        ds.add_image("t", image_id=factor, path=_write(tmp_path, f"x{factor}.png", _ramp16(factor)))
    ds.prepare()
    a, b = (ds.load_image(i).astype(float) for i in ds.image_ids)
    np.testing.assert_array_equal(a[..., 0], np.rint(_ramp16(24) * (255 / 65535)))
    assert a.mean() / b.mean() == pytest.approx(24 / 25, rel=0.01)


def test_image_bit_depth_class_attribute_and_constructor(tmp_path):
    path = _write(tmp_path, "x.png", _ramp16(24))

    class Twelve(Dataset):
        IMAGE_BIT_DEPTH = 12

    for ds, expected in [(Dataset(), np.rint(_ramp16(24) * (255 / 65535))),
                         (Twelve(), np.rint(_ramp16(24) * (255 / 4095))),
                         (Dataset(image_bit_depth=12), np.rint(_ramp16(24) * (255 / 4095))),
                         (Twelve(image_bit_depth=16), np.rint(_ramp16(24) * (255 / 65535)))]:
        ds.add_image("t", image_id="x", path=path)
        ds.prepare()
        np.testing.assert_array_equal(ds.load_image(0)[..., 1], expected)
    assert Twelve().IMAGE_BIT_DEPTH == 12 and Dataset.IMAGE_BIT_DEPTH is None
    with pytest.raises(ValueError, match=r"bit_depth must be None, an int 8\.\.16 or "
                                         r"'percentile', got 11\.5"):
        Dataset(image_bit_depth=11.5)
    with pytest.raises(ValueError, match="got 'auto'"):
        type("Bad", (Dataset,), {"IMAGE_BIT_DEPTH": "auto"})()
    # a stated depth the file contradicts: the error names the image and the file
    ds = Dataset(image_bit_depth=12)
    ds.add_image("t", image_id="x25", path=_write(tmp_path, "x25.png", _ramp16(25)))
    ds.prepare()
    with pytest.raises(ValueError, match=r"image 0 \(.*x25\.png'\): the uint16 image has "
                                         r"values up to 4250, but bit_depth=12 allows 0\.\.4095"):
        ds.load_image(0)


def test_path_inside_refuses_paths_that_leave_the_folder():
    from mrcnn.dataset import path_inside

    assert path_inside("/data", "a.png", "x") == "/data/a.png"
    assert path_inside("/data", "A172/b.tif", "x") == "/data/A172/b.tif"
    assert path_inside("/data", "x..y.png", "x") == "/data/x..y.png"       # not a component
    for bad in ("../a.png", "/etc/passwd", "a/../../b", "..", "..\\a", "C:\\a", "\\\\srv\\a"):
        with pytest.raises(ValueError, match=rf"image 7: {re.escape(repr(bad))} leads outside "
                                             rf"the data folder '/data'.*allow_outside=True"):
            path_inside("/data", bad, "image 7")
        assert path_inside("/data", bad, "image 7", allow_outside=True) == \
            os.path.join("/data", bad)
    with pytest.raises(ValueError, match="NUL character"):
        path_inside("/data", "a\0.png", "image 7", allow_outside=True)
