import logging
import os

import numpy as np
import pytest
from PIL import Image

from mrcnn.datasets.nucleus import NucleusDataset

# Backend-independent: DSB 2018 folder parsing in NumPy; no Keras op.
pytestmark = pytest.mark.backend_independent

H, W = 7, 9


def _nuclei():
    a = np.zeros((H, W), bool)
    a[1:3, 1:4] = True
    b = np.zeros((H, W), bool)
    b[4:7, 6:9] = True
    return a, b


def _write(root):
    """DSB layout: one training folder with three mask PNGs, one test folder."""
    a, b = _nuclei()
    train = root / "0a1b"
    (train / "images").mkdir(parents=True)
    (train / "masks").mkdir()
    rgba = np.zeros((H, W, 4), np.uint8)
    rgba[..., 0] = np.arange(W) * 20
    rgba[..., 1] = 7
    rgba[..., 2] = 9
    rgba[..., 3] = 255
    Image.fromarray(rgba).save(train / "images" / "0a1b.png")
    Image.fromarray(a.astype(np.uint8) * 255).save(train / "masks" / "m1.png")     # 0/255 gray
    Image.fromarray(np.zeros((H, W), np.uint8)).save(train / "masks" / "m2.png")   # blank
    rgb = np.zeros((H, W, 3), np.uint8)
    rgb[b, 1] = 1                                                                   # any channel
    Image.fromarray(rgb).save(train / "masks" / "m3.png")
    test = root / "ffff"
    (test / "images").mkdir(parents=True)
    Image.fromarray(np.full((5, 6), 30, np.uint8)).save(test / "images" / "ffff.png")
    (root / ".hidden").mkdir()                       # ignored: hidden folders
    (root / "README.txt").write_text("not an image folder")
    return rgba


def _load(root, **kwargs):
    ds = NucleusDataset()
    ds.load_nucleus(root, **kwargs)
    ds.prepare()
    return ds


def test_masks_and_classes(tmp_path, caplog):
    _write(tmp_path)
    ds = _load(tmp_path)
    assert ds.class_names == ["BG", "nucleus"]
    assert [info["id"] for info in ds.image_info] == ["0a1b", "ffff"]
    with caplog.at_level(logging.WARNING):
        masks, class_ids = ds.load_mask(0)
    a, b = _nuclei()
    np.testing.assert_array_equal(masks, np.stack([a, b], axis=-1))   # blank m2 skipped
    np.testing.assert_array_equal(class_ids, [1, 1])
    assert class_ids.dtype == np.int32
    assert "m2.png is blank" in caplog.text


def test_rgba_image_is_converted(tmp_path):
    rgba = _write(tmp_path)
    image = _load(tmp_path).load_image(0)
    np.testing.assert_array_equal(image, rgba[..., :3])


def test_test_folder_without_masks(tmp_path):
    _write(tmp_path)
    ds = _load(tmp_path, image_ids=["ffff"])
    masks, class_ids = ds.load_mask(0)
    assert masks.shape == (5, 6, 0) and class_ids.shape == (0,)
    assert ds.image_reference(0) == f"ffff ({tmp_path / 'ffff' / 'images' / 'ffff.png'})"


def test_missing_image_names_the_path(tmp_path):
    _write(tmp_path)
    os.remove(tmp_path / "ffff" / "images" / "ffff.png")
    with pytest.raises(FileNotFoundError) as error:
        _load(tmp_path)
    assert "'ffff'" in str(error.value)
    assert str(tmp_path / "ffff" / "images" / "ffff.png") in str(error.value)
    with pytest.raises(FileNotFoundError, match="nucleus data folder not found"):
        _load(tmp_path / "nope")


def test_mask_of_the_wrong_size_names_the_file(tmp_path):
    _write(tmp_path)
    bad = tmp_path / "0a1b" / "masks" / "m4.png"
    Image.fromarray(np.full((H, W + 1), 255, np.uint8)).save(bad)
    ds = _load(tmp_path)
    with pytest.raises(ValueError, match=r"m4\.png.* is 7x10 but the image is 7x9"):
        ds.load_mask(0)


def test_cache_key_follows_image_and_mask_files(tmp_path):
    _write(tmp_path)
    ds = _load(tmp_path)
    key = ds.cache_key(0)
    assert ds.cache_key(0) == key                         # stable without changes
    assert _load(tmp_path).cache_key(0) == key            # and across instances
    assert ds.cache_key(1) != key

    masks = tmp_path / "0a1b" / "masks"
    st = os.stat(masks / "m1.png")
    os.utime(masks / "m1.png", ns=(st.st_atime_ns, st.st_mtime_ns + 10 ** 9))
    touched = ds.cache_key(0)
    assert touched != key                                 # same bytes, new mtime

    a, _ = _nuclei()
    Image.fromarray(a.astype(np.uint8) * 255).save(masks / "m9.png")
    added = ds.cache_key(0)
    assert added not in (key, touched)                    # a new mask file
    (masks / "notes.txt").write_text("not a mask")
    assert ds.cache_key(0) == added                       # load_mask ignores it

    image = tmp_path / "0a1b" / "images" / "0a1b.png"
    st = os.stat(image)
    os.utime(image, ns=(st.st_atime_ns, st.st_mtime_ns + 10 ** 9))
    assert ds.cache_key(0) != added                       # the image file too

    os.remove(masks / "m9.png")
    assert ds.cache_key(0) != added                       # a removed mask file


def test_cache_key_drives_the_sample_cache_key(tmp_path):
    from mrcnn.data.cache import sample_key

    _write(tmp_path)
    ds = _load(tmp_path)
    fields = {"IMAGE_MAX_DIM": 64}
    key = sample_key(ds, 0, fields, "boxmasks")
    assert sample_key(_load(tmp_path), 0, fields, "boxmasks") == key
    mask = tmp_path / "0a1b" / "masks" / "m3.png"
    st = os.stat(mask)
    os.utime(mask, ns=(st.st_atime_ns, st.st_mtime_ns + 10 ** 9))
    assert sample_key(ds, 0, fields, "boxmasks") != key


# ---------------------------------------------------------------- hostile input (issue 15)
@pytest.mark.parametrize("bad_id", ["..", "../outside", "/abs/x", "a/../../x"])
def test_image_ids_that_leave_the_root_are_refused(tmp_path, bad_id):
    root = tmp_path / "root"
    _write(root)
    # "..": <root>/../images/...png would be read from tmp_path
    (tmp_path / "images").mkdir()
    Image.fromarray(np.zeros((H, W), np.uint8)).save(tmp_path / "images" / "...png", format="PNG")
    with pytest.raises(ValueError) as error:
        _load(root, image_ids=[bad_id])
    message = str(error.value)
    assert f"nucleus image {bad_id!r}" in message and "leads outside" in message
    assert "allow_outside=True" in message and str(root) in message


def test_allow_outside_reads_a_folder_next_to_the_root(tmp_path):
    root = tmp_path / "root"
    _write(root)
    rgba = _write(tmp_path / "other")
    ds = _load(root, image_ids=["../other/0a1b"], allow_outside=True)
    np.testing.assert_array_equal(ds.load_image(0), rgba[..., :3])


def test_image_bit_depth_reaches_nucleus_images(tmp_path):
    _write(tmp_path)
    deep = (np.arange(H * W).reshape(H, W) * 60).astype(np.uint16)          # max 3720
    Image.fromarray(deep).save(tmp_path / "0a1b" / "images" / "0a1b.png")
    for bit_depth, top in [(None, 65535), (12, 4095)]:
        ds = NucleusDataset(image_bit_depth=bit_depth)
        ds.load_nucleus(tmp_path)
        ds.prepare()
        np.testing.assert_array_equal(ds.load_image(0)[..., 2],
                                      np.rint(deep * (255 / top)).astype(np.uint8))
    ds = NucleusDataset(image_bit_depth="percentile")
    ds.load_nucleus(tmp_path)
    ds.prepare()
    lo, hi = np.percentile(deep, [0.5, 99.5])
    np.testing.assert_array_equal(
        ds.load_image(0)[..., 0], np.rint(np.clip((deep - lo) / (hi - lo), 0, 1) * 255))
