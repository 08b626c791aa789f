"""Tests of mrcnn/data/fit.py: resizing, cropping and padding images to the model input."""

import numpy as np
import pytest
import skimage.transform
from data_helpers import Cfg, smooth_image

from mrcnn.data.fit import (crop_origin, fit_image, input_padding, resize_image, resize_mask,
                            undo_resize_boxes)

def test_none_mode_is_identity():
    image = smooth_image()
    out, window, scale, padding, crop = resize_image(image, 128, 256, mode="none")
    assert out is image
    assert window == (0, 0, 100, 200) and scale == 1 and crop is None
    assert padding == [(0, 0), (0, 0), (0, 0)]


def test_square_upscale_by_hand():
    # short side 100 -> 128: scale 1.28, long side 256 <= max_dim.
    image = smooth_image()
    out, window, scale, padding, crop = resize_image(image, 128, 256, mode="square")
    assert out.shape == (256, 256, 3) and out.dtype == np.uint8
    assert scale == pytest.approx(1.28)
    assert padding == [(64, 64), (0, 0), (0, 0)]
    assert window == (64, 0, 192, 256)
    assert crop is None
    assert not out[:64].any() and not out[192:].any()


def test_square_limited_by_max_dim():
    # 100x300: 1.28 would give a 384 long side; limited to 256/300.
    image = np.full((100, 300, 3), 9, np.uint8)
    out, window, scale, padding, _ = resize_image(image, 128, 256, mode="square")
    assert scale == pytest.approx(256 / 300)
    assert out.shape == (256, 256, 3)
    # round(100 * 256 / 300) = 85 rows, padded 85 above and 86 below
    assert padding == [(85, 86), (0, 0), (0, 0)]
    assert window == (85, 0, 170, 256)
    assert (out[85:170] == 9).all() and not out[:85].any() and not out[170:].any()


def test_square_without_min_dim_only_pads():
    image = smooth_image()
    out, window, scale, padding, _ = resize_image(image, None, 256, mode="square")
    assert scale == 1
    assert window == (78, 28, 178, 228)
    np.testing.assert_array_equal(out[78:178, 28:228], image)


def test_min_scale_forces_upscale():
    image = smooth_image()
    out, window, scale, _, _ = resize_image(image, None, 512, min_scale=2, mode="square")
    assert scale == 2
    assert window == (156, 56, 356, 456)
    assert out.shape == (512, 512, 3)


def test_pad64_by_hand():
    image = smooth_image()
    out, window, scale, padding, _ = resize_image(image, mode="pad64")
    assert scale == 1 and out.shape == (128, 256, 3)
    assert padding == [(14, 14), (28, 28), (0, 0)]
    assert window == (14, 28, 114, 228)
    np.testing.assert_array_equal(out[14:114, 28:228], image)
    # 520x704 (Sartorius) -> 576x704
    out, window, _, padding, _ = resize_image(np.zeros((520, 704, 3), np.uint8),
                                              mode="pad64")
    assert out.shape == (576, 704, 3) and window == (28, 0, 548, 704)
    # with min_dim: 100x200 -> 128x256, already multiples of 64
    out, window, scale, padding, _ = resize_image(image, 128, None, mode="pad64")
    assert scale == pytest.approx(1.28) and out.shape == (128, 256, 3)
    assert window == (0, 0, 128, 256) and padding == [(0, 0), (0, 0), (0, 0)]


def test_crop_takes_a_window_of_the_scaled_image():
    image = smooth_image()
    out, window, scale, padding, crop = resize_image(image, 64, None, mode="crop",
                                                     rng=np.random.default_rng(3))
    assert scale == 1 and out.shape == (64, 64, 3) and window == (0, 0, 64, 64)
    y, x, h, w = crop
    assert (h, w) == (64, 64) and 0 <= y <= 36 and 0 <= x <= 136
    np.testing.assert_array_equal(out, image[y:y + 64, x:x + 64])
    # same seed, same crop
    again = resize_image(image, 64, None, mode="crop", rng=np.random.default_rng(3))
    assert again[4] == crop
    # scaled first when the short side is below min_dim
    out, _, scale, _, crop = resize_image(image, 128, None, mode="crop", rng=0)
    assert scale == pytest.approx(1.28) and out.shape == (128, 128, 3)
    assert crop[0] == 0 and 0 <= crop[1] <= 128


def test_unknown_mode_and_missing_sizes():
    with pytest.raises(ValueError, match=r"'squash'.*none.*square.*pad64.*crop"):
        resize_image(smooth_image(), 128, 256, mode="squash")
    with pytest.raises(ValueError, match="max_dim"):
        resize_image(smooth_image(), 128, None, mode="square")
    with pytest.raises(ValueError, match="min_dim"):
        resize_image(smooth_image(), None, 256, mode="crop")


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32])
def test_dtype_kept(dtype):
    image = smooth_image().astype(dtype)
    out = resize_image(image, 128, 256, mode="square")[0]
    assert out.dtype == dtype


def test_window_resized_back_reproduces_original():
    image = smooth_image()
    for mode, kwargs in [("square", dict(min_dim=128, max_dim=256)),
                         ("square", dict(min_dim=None, max_dim=160, min_scale=None)),
                         ("pad64", dict(min_dim=128))]:
        out, window, *_ = resize_image(image, mode=mode, **kwargs)
        y1, x1, y2, x2 = window
        back = skimage.transform.resize(out[y1:y2, x1:x2].astype(float), image.shape[:2],
                                        order=1, preserve_range=True, anti_aliasing=False)
        err = np.abs(back - image).mean()
        assert err < 4.0, (mode, kwargs, err)


def test_resize_mask_matches_image_transform():
    # A bright square in the image and the same square as a mask must land on
    # the same pixels after resizing, in every mode.
    image = np.zeros((100, 200, 3), np.uint8)
    image[20:40, 50:80] = 255
    mask = np.zeros((100, 200, 2), bool)
    mask[20:40, 50:80, 0] = True
    mask[70:90, 150:190, 1] = True
    for mode, kwargs in [("square", dict(min_dim=128, max_dim=256)),
                         ("square", dict(min_dim=None, max_dim=150)),
                         ("pad64", dict(min_dim=None)),
                         ("crop", dict(min_dim=128, rng=np.random.default_rng(1)))]:
        out, window, scale, padding, crop = resize_image(image, mode=mode, **kwargs)
        m = resize_mask(mask, scale, padding, crop)
        assert m.shape == out.shape[:2] + (2,) and m.dtype == bool
        bright = out[..., 0] > 127
        inter = (bright & m[..., 0]).sum()
        union = (bright | m[..., 0]).sum()
        assert inter / union > 0.9, mode
        # the window holds the whole mask (no mask pixels in the padding)
        y1, x1, y2, x2 = window
        assert m[y1:y2, x1:x2].sum() == m.sum()


def test_resize_mask_equals_skimage_nearest():
    rng = np.random.default_rng(0)
    mask = rng.random((37, 53, 3)) > 0.5
    for scale in (2.0, 0.5, 1.7, 256 / 300):
        shape = (round(37 * scale), round(53 * scale))
        expected = skimage.transform.resize(mask, shape, order=0, preserve_range=True,
                                            anti_aliasing=False)
        got = resize_mask(mask, scale, [(0, 0)] * 3)
        np.testing.assert_array_equal(got, expected)


def test_undo_resize_boxes_inverts_the_forward_transform():
    image = smooth_image()
    for mode, kwargs in [("square", dict(min_dim=128, max_dim=256)),
                         ("square", dict(min_dim=None, max_dim=256)),
                         ("pad64", dict(min_dim=100))]:
        out, window, scale, padding, crop = resize_image(image, mode=mode, **kwargs)
        boxes = np.array([[10, 20, 30, 60], [0, 0, 100, 200]], float)
        forward = boxes * scale + np.array([window[0], window[1]] * 2)
        np.testing.assert_allclose(undo_resize_boxes(forward, window, scale), boxes)
        # the window itself maps exactly to the full original image
        full = undo_resize_boxes(np.array([window], float), window, scale,
                                 original_shape=image.shape)
        np.testing.assert_allclose(full, [[0, 0, 100, 200]])
    # crop: boxes shift by the crop offset
    out, window, scale, _, crop = resize_image(image, 64, None, mode="crop", rng=5)
    got = undo_resize_boxes(np.array([[0, 0, 10, 10]]), window, scale, crop=crop)
    np.testing.assert_allclose(got, [[crop[0], crop[1], crop[0] + 10, crop[1] + 10]])


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


def test_crop_origin_is_uniform_and_inside():
    rng = np.random.default_rng(0)
    corners = np.array([crop_origin((100, 70), 64, rng) for _ in range(2000)])
    assert corners[:, 0].min() == 0 and corners[:, 0].max() == 36
    assert corners[:, 1].min() == 0 and corners[:, 1].max() == 6
    # every position is drawn about equally often (37 rows: ~54 each)
    counts = np.bincount(corners[:, 0], minlength=37)
    assert counts.min() > 25 and counts.max() < 90
    assert crop_origin((40, 30), 64, rng) == (0, 0)     # smaller than the crop


def test_input_padding_centres_and_rejects_larger_images():
    assert input_padding((520, 704), (576, 704)) == (28, 28, 0, 0)
    assert input_padding((5, 7), (8, 10)) == (1, 2, 1, 2)
    with pytest.raises(ValueError, match=r"sample is 600x704 .* larger than the model input "
                                         r"576x704"):
        input_padding((600, 704), (576, 704), "sample")
