"""Tests of mrcnn/data/image.py: molding, conversion to RGB uint8, image headers."""

import numpy as np
import pytest
from data_helpers import smooth_image

from mrcnn.config import Config
from mrcnn.data.image import mold_image, to_rgb_uint8, unmold_image


def test_mold_unmold_round_trip():
    class C(Config):
        NUM_CLASSES = 2

    config = C()
    image = smooth_image()
    molded = mold_image(image, config)
    assert molded.dtype == np.float32
    np.testing.assert_allclose(molded[0, 0], image[0, 0] - config.MEAN_PIXEL, atol=1e-4)
    np.testing.assert_array_equal(unmold_image(molded, config), image)
    # out-of-range values are clipped, not wrapped
    assert unmold_image(np.full((1, 1, 3), 500.0), config).tolist() == [[[255] * 3]]


def test_to_rgb_uint8_channels():
    gray = np.arange(12, dtype=np.uint8).reshape(3, 4)
    expected = np.repeat(gray[..., None], 3, axis=2)
    np.testing.assert_array_equal(to_rgb_uint8(gray), expected)
    np.testing.assert_array_equal(to_rgb_uint8(gray[..., None]), expected)
    gray_alpha = np.stack([gray, np.full_like(gray, 255)], -1)
    np.testing.assert_array_equal(to_rgb_uint8(gray_alpha), expected)
    rgba = np.concatenate([expected, np.full((3, 4, 1), 7, np.uint8)], -1)
    np.testing.assert_array_equal(to_rgb_uint8(rgba), expected)
    with pytest.raises(ValueError, match="C in 1..4"):
        to_rgb_uint8(np.zeros((3, 4, 5), np.uint8))


def test_to_rgb_uint8_value_ranges():
    full16 = np.array([[0, 257, 32896, 65535]], np.uint16)  # max >= 4096: /257
    np.testing.assert_array_equal(to_rgb_uint8(full16)[..., 0], [[0, 1, 128, 255]])
    bits12 = np.array([[0, 4095, 2048, 16]], np.uint16)     # max < 4096: *255/4095
    np.testing.assert_array_equal(to_rgb_uint8(bits12)[..., 0],
                                  np.rint(np.array([[0, 4095, 2048, 16]]) * 255 / 4095))
    int32 = np.array([[-5, 65535]], np.int32)                # PIL "I" mode
    np.testing.assert_array_equal(to_rgb_uint8(int32)[..., 0], [[0, 255]])
    np.testing.assert_array_equal(to_rgb_uint8(np.array([[True, False]]))[..., 1],
                                  [[255, 0]])
    np.testing.assert_array_equal(to_rgb_uint8(np.array([[0.0, 0.5, 1.0]]))[..., 2],
                                  [[0, 128, 255]])
    with pytest.raises(ValueError, match=r"\[0, 1\].*\[0.0, 255.0\]"):
        to_rgb_uint8(np.array([[0.0, 255.0]]))


def test_read_image_size_and_errors(tmp_path):
    from PIL import Image
    from mrcnn.data.image import read_image_size
    path = tmp_path / "a.png"
    Image.fromarray(np.zeros((37, 53, 3), np.uint8)).save(path)
    assert read_image_size(str(path), "image 'a'") == (37, 53)
    with pytest.raises(FileNotFoundError, match="image 'b': file not found"):
        read_image_size(str(tmp_path / "b.png"), "image 'b'")
    bad = tmp_path / "c.png"
    bad.write_bytes(b"not a png")
    with pytest.raises(ValueError, match="image 'c': cannot read"):
        read_image_size(str(bad), "image 'c'")
