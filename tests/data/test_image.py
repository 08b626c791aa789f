"""Tests of mrcnn/data/image.py: molding, conversion to RGB uint8, image headers."""

import numpy as np
import pytest
from data_helpers import smooth_image

from mrcnn.config import Config
from mrcnn.data.image import (dataset_image_shape, dataset_mean_pixel, mold_image, to_rgb_uint8,
                              unmold_image)
from mrcnn.dataset import Dataset

# Backend-independent: NumPy molding, RGB conversion and image headers; no Keras op.
pytestmark = pytest.mark.backend_independent


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
    full16 = np.array([[0, 257, 32896, 65535]], np.uint16)  # uint16: /257
    np.testing.assert_array_equal(to_rgb_uint8(full16)[..., 0], [[0, 1, 128, 255]])
    bits12 = np.array([[0, 4095, 2048, 16]], np.uint16)     # stated 12-bit: *255/4095
    np.testing.assert_array_equal(to_rgb_uint8(bits12, bit_depth=12)[..., 0],
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


# ---------------------------------------------------------------- bit depth (issue 15)
def _ramp16(factor):
    """A 16-bit image: 0..170 (a ramp over 40x64 pixels) times `factor`."""
    base = (np.arange(40 * 64).reshape(40, 64) % 171).astype(np.uint16)
    return base * np.uint16(factor)


def test_brightness_does_not_jump_at_the_old_12_bit_threshold():
    # x24 has max 4080 (< 4096, the old "12-bit" guess), x25 max 4250: the old
    # rule gave means ~184 and ~12. The fixed rule (0..65535 for uint16) keeps
    # the ratio of the data, 24:25.
    dim, bright = _ramp16(24), _ramp16(25)
    assert dim.max() == 4080 and bright.max() == 4250
    a, b = to_rgb_uint8(dim), to_rgb_uint8(bright)
    np.testing.assert_array_equal(a[..., 0], np.rint(dim * (255 / 65535)).astype(np.uint8))
    np.testing.assert_array_equal(b[..., 0], np.rint(bright * (255 / 65535)).astype(np.uint8))
    ratio = a.astype(float).mean() / b.astype(float).mean()
    assert ratio == pytest.approx(24 / 25, rel=0.01)


def test_bit_depth_12_maps_0_4095_and_refuses_values_above():
    image = np.array([[0, 1, 2048, 4095]], np.uint16)
    np.testing.assert_array_equal(to_rgb_uint8(image, bit_depth=12)[..., 0],
                                  [[0, 0, 128, 255]])           # rint(v * 255 / 4095)
    assert to_rgb_uint8(_ramp16(24), bit_depth=12).mean() == pytest.approx(
        np.rint(_ramp16(24) * (255 / 4095)).mean())
    with pytest.raises(ValueError, match=r"up to 4250.*bit_depth=12.*0\.\.4095"):
        to_rgb_uint8(_ramp16(25), bit_depth=12)


@pytest.mark.parametrize("bit_depth, top", [(8, 255), (10, 1023), (14, 16383), (16, 65535)])
def test_each_integer_bit_depth(bit_depth, top):
    image = np.array([[0, top // 3, top // 2, top]], np.uint16)
    expected = np.rint(np.array([0, top // 3, top // 2, top]) * 255 / top).astype(np.uint8)
    np.testing.assert_array_equal(to_rgb_uint8(image, bit_depth=bit_depth)[0, :, 1], expected)
    if top < 65535:
        with pytest.raises(ValueError, match=f"bit_depth={bit_depth}"):
            to_rgb_uint8(image + 1, bit_depth=bit_depth)


def test_bit_depth_for_8_bit_files_and_floats():
    gray = np.array([[0, 100, 255]], np.uint8)
    np.testing.assert_array_equal(to_rgb_uint8(gray, bit_depth=8)[..., 0], gray)
    with pytest.raises(ValueError, match=r"8-bit \(uint8\) image.*bit_depth=12"):
        to_rgb_uint8(gray, bit_depth=12)
    # float files holding raw counts (e.g. float32 TIFFs) follow the stated depth
    counts = np.array([[0.0, 1000.0, 4095.0]], np.float32)     # 1000 * 255 / 4095 = 62.3
    np.testing.assert_array_equal(to_rgb_uint8(counts, bit_depth=12)[..., 0], [[0, 62, 255]])
    # bool stays 0/255 whatever the depth
    np.testing.assert_array_equal(to_rgb_uint8(np.array([[True, False]]), bit_depth=16)[..., 0],
                                  [[255, 0]])


def test_percentile_stretches_between_the_0_5_and_99_5_percentiles():
    # 1000 values 0..999: numpy's linear percentiles are 4.995 and 994.005
    values = np.arange(1000, dtype=np.uint16).reshape(20, 50) * np.uint16(7)
    lo, hi = 4.995 * 7, 994.005 * 7
    expected = np.rint(np.clip((values - lo) / (hi - lo), 0, 1) * 255).astype(np.uint8)
    out = to_rgb_uint8(values, bit_depth="percentile")
    np.testing.assert_array_equal(out[..., 2], expected)
    assert out[0, 0, 0] == 0 and out[-1, -1, 0] == 255
    # the same data at any scale or dtype gives the same image
    np.testing.assert_array_equal(to_rgb_uint8(values.astype(np.float32) / 70000,
                                               bit_depth="percentile"), out)
    # one joint range for all channels (colour balance kept), alpha dropped
    rgba = np.stack([values, values // 2, values, np.full_like(values, 9)], -1)
    out = to_rgb_uint8(rgba, bit_depth="percentile")
    flat = np.concatenate([values.ravel(), (values // 2).ravel(), values.ravel()])
    lo, hi = np.percentile(flat, [0.5, 99.5])
    np.testing.assert_array_equal(
        out[..., 1], np.rint(np.clip((values // 2 - lo) / (hi - lo), 0, 1) * 255).astype(np.uint8))
    # a flat image has no range to stretch: all 0
    np.testing.assert_array_equal(to_rgb_uint8(np.full((3, 4), 900, np.uint16),
                                               bit_depth="percentile"), np.zeros((3, 4, 3)))


def test_default_rule_is_the_dtype_range_and_wide_integers_must_be_16_bit():
    np.testing.assert_array_equal(to_rgb_uint8(np.array([[0, 4095]], np.uint16))[..., 0],
                                  [[0, 16]])                    # no 12-bit guess any more
    with pytest.raises(ValueError, match=r"int32 image has values up to 70000.*0\.\.65535"):
        to_rgb_uint8(np.array([[0, 70000]], np.int32))


@pytest.mark.parametrize("bad", [7, 17, 12.0, "12", True, "auto"])
def test_bad_bit_depth_names_the_value_and_the_choices(bad):
    with pytest.raises((ValueError, TypeError), match=r"bit_depth must be None, an int 8\.\.16 "
                                                      r"or 'percentile'"):
        to_rgb_uint8(np.zeros((2, 2), np.uint16), bit_depth=bad)


class _Images:
    """A stand-in dataset: image_ids and load_image over a list of arrays."""

    def __init__(self, images):
        self.images = images
        self.image_ids = np.arange(len(images))

    def load_image(self, image_id):
        return self.images[image_id]


def test_dataset_mean_pixel_weighs_every_pixel():
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (h, w, 3)).astype(np.uint8)
              for h, w in ((20, 30), (64, 8), (5, 5))]
    expected = np.concatenate([im.reshape(-1, 3) for im in images]).astype(np.float64).mean(0)
    np.testing.assert_allclose(dataset_mean_pixel(_Images(images)), expected, rtol=1e-12)
    # a sample of 2 of the 3 images: the mean of those two, whichever they are
    sample = dataset_mean_pixel(_Images(images), max_images=2, seed=1)
    pairs = [np.concatenate([images[a].reshape(-1, 3), images[b].reshape(-1, 3)]).mean(0)
             for a, b in ((0, 1), (0, 2), (1, 2))]
    assert any(np.allclose(sample, p) for p in pairs)


def test_dataset_mean_pixel_refuses_empty_and_mixed_inputs():
    with pytest.raises(ValueError, match="no images"):
        dataset_mean_pixel(_Images([]))
    with pytest.raises(ValueError, match="image 1 has 1 channels, the others 3"):
        dataset_mean_pixel(_Images([np.zeros((4, 4, 3)), np.zeros((4, 4, 1))]))
    with pytest.raises(ValueError, match=r"shape \(4, 4\), expected \[H, W, C\]"):
        dataset_mean_pixel(_Images([np.zeros((4, 4))]))


class _Sized(Dataset):
    """Images with recorded sizes (as the Sartorius/COCO loaders add them) or none (read)."""

    def __init__(self, sizes):
        super().__init__()
        self.add_class("t", 1, "cell")
        self.reads = []
        for i, size in enumerate(sizes):
            kwargs = {} if size[0] == "read" else {"height": size[0], "width": size[1]}
            self.add_image("t", i, None, shape=size[1:] if size[0] == "read" else None, **kwargs)
        self.prepare()

    def load_image(self, image_id):
        self.reads.append(image_id)
        return np.zeros(tuple(self.image_info[image_id]["shape"]) + (3,), np.uint8)


def test_dataset_image_shape_is_the_largest_height_and_width_over_datasets():
    a, b = _Sized([(520, 704), (256, 900)]), _Sized([(1040, 300), ("read", 700, 1388)])
    assert dataset_image_shape(a) == (520, 900)
    assert dataset_image_shape(a, b) == (1040, 1388)
    assert a.reads == [] and b.reads == [1]          # only the image without a recorded size


def test_dataset_image_shape_refuses_no_images_and_bad_sizes():
    with pytest.raises(ValueError, match="no images"):
        dataset_image_shape(_Sized([]))
    with pytest.raises(ValueError, match=r"image 0 .*records a size of 0x704, expected positive"):
        dataset_image_shape(_Sized([(0, 704)]))
