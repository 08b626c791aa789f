"""Tests of mrcnn/data/fit.py: resizing, cropping and padding images to the model input."""

import numpy as np
import pytest
import skimage.transform
from data_helpers import Cfg, smooth_image

from mrcnn.config import load_config, save_config
from mrcnn.data.fit import (crop_origin, draw_image_scale, fit_image, input_padding,
                            padded_size, prepared_image_scale, resize_image, resize_mask, scale_for_model,
                            undo_resize_boxes)

# Backend-independent: NumPy resize / crop / pad to the model input; no Keras op.
pytestmark = pytest.mark.backend_independent

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
    # the image in the top-left corner, the padding below it (input_padding)
    assert tuple(window) == (0, 0, 520, 704) and padding[0] == (0, 56)
    assert out[520:].sum() == 0 and out[:520].min() == 1
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


def test_input_padding_puts_the_image_in_the_corner_and_rejects_larger_images():
    assert input_padding((520, 704), (576, 704)) == (0, 56, 0, 0)
    assert input_padding((5, 7), (8, 10)) == (0, 3, 0, 3)
    assert input_padding((8, 10), (8, 10)) == (0, 0, 0, 0)
    with pytest.raises(ValueError, match=r"sample is 600x704 .* larger than the model input "
                                         r"576x704"):
        input_padding((600, 704), (576, 704), "sample")


# ---------------------------------------------------------------- IMAGE_SCALE
def _skimage_bilinear(image, shape):
    """Independent reference: skimage's bilinear resize, rounded back to uint8."""
    out = skimage.transform.resize(image, shape, order=1, mode="constant", cval=0, clip=True,
                                   preserve_range=True, anti_aliasing=False)
    return np.rint(out).astype(np.uint8)


def test_none_mode_factor_resizes_once():
    image = smooth_image()
    out, window, scale, padding, crop = resize_image(image, mode="none", factor=2)
    assert out.shape == (200, 400, 3) and out.dtype == np.uint8
    assert window == (0, 0, 200, 400) and scale == 2 and crop is None
    assert padding == [(0, 0), (0, 0), (0, 0)]
    np.testing.assert_array_equal(out, _skimage_bilinear(image, (200, 400)))
    # 0.5: 100x200 -> 50x100
    out, window, scale, _, _ = resize_image(image, mode="none", factor=0.5)
    assert out.shape == (50, 100, 3) and window == (0, 0, 50, 100) and scale == 0.5


def test_factor_composes_with_the_mode_by_hand():
    image = smooth_image()                                   # 100x200
    # pad64, factor 1.5: 150x300, padded to 192x320 (21+21 rows, 10+10 columns)
    out, window, scale, padding, _ = resize_image(image, mode="pad64", factor=1.5)
    assert scale == 1.5 and out.shape == (192, 320, 3)
    assert padding == [(21, 21), (10, 10), (0, 0)] and window == (21, 10, 171, 310)
    np.testing.assert_array_equal(out[21:171, 10:310], _skimage_bilinear(image, (150, 300)))
    # square 128/256, factor 2: 200x400 -> long side limited to 256: total 1.28 as factor 1
    a = resize_image(image, 128, 256, mode="square", factor=2)
    b = resize_image(image, 128, 256, mode="square")
    assert a[2] == pytest.approx(1.28) and a[1] == b[1] == (64, 0, 192, 256)
    np.testing.assert_array_equal(a[0], b[0])
    # square 128/512, factor 0.5: 50x100 -> short side up to 128: total 1.28
    out, window, scale, _, _ = resize_image(image, 128, 512, mode="square", factor=0.5)
    assert scale == pytest.approx(1.28) and window == (192, 128, 320, 384)
    # min_scale works on the size after the factor: 2 (not 1) * 1.5 = 3
    out, window, scale, _, _ = resize_image(image, None, None, min_scale=2, mode="pad64",
                                            factor=1.5)
    assert scale == 3 and window[2] - window[0] == 300 and window[3] - window[1] == 600
    # crop: factor then min_dim 64 (50x100 -> short side 64: total 0.64), then a 64 crop
    out, window, scale, _, crop = resize_image(image, 64, None, mode="crop", factor=0.5, rng=1)
    assert scale == pytest.approx(0.64) and out.shape == (64, 64, 3) and crop[2:] == (64, 64)


def test_resize_mask_follows_the_factor():
    mask = np.zeros((100, 200, 2), bool)
    mask[10:30, 20:60, 0] = True
    mask[50:100, 150:200, 1] = True
    image, window, scale, padding, _ = resize_image(smooth_image(), mode="pad64", factor=1.5)
    out = resize_mask(mask, scale, padding)
    assert out.shape[:2] == image.shape[:2]
    # the squares scale by 1.5 and shift by the padding (21, 10) exactly
    expected = np.zeros((192, 320, 2), bool)
    expected[21 + 15:21 + 45, 10 + 30:10 + 90, 0] = True
    expected[21 + 75:21 + 150, 10 + 225:10 + 300, 1] = True
    np.testing.assert_array_equal(out, expected)


@pytest.mark.parametrize("factor", [0, -1.0, float("nan"), float("inf")])
def test_bad_factor_is_refused(factor):
    with pytest.raises(ValueError, match=f"factor must be a finite number > 0.*{factor}"):
        resize_image(smooth_image(), mode="none", factor=factor)


def test_non_number_factor_is_a_type_error():
    with pytest.raises(TypeError, match="factor must be a number > 0.*'2'"):
        resize_image(smooth_image(), mode="none", factor="2")


def test_fit_image_uses_image_scale_and_boxes_map_back():
    class C(Cfg):
        IMAGE_RESIZE_MODE = "none"
        IMAGE_SHAPE = [256, 448, 3]
        IMAGE_SCALE = 2.0
    image = smooth_image()
    out, window, scale, padding, _ = fit_image(image, C(), training=False)
    assert out.shape == (256, 448, 3) and scale == 2
    assert tuple(window) == (0, 0, 200, 400)
    np.testing.assert_array_equal(out[:200, :400], _skimage_bilinear(image, (200, 400)))
    # a box in the model input maps back to half its size in the original
    got = undo_resize_boxes(np.array([[20, 40, 60, 100]]), window, scale,
                            original_shape=image.shape)
    np.testing.assert_allclose(got, [[10, 20, 30, 50]])
    # too large after the factor: the error says how to run it (tiles)
    with pytest.raises(ValueError, match=r"200x400 after resizing.*detect_tiled"):
        fit_image(image, type("D", (C,), {"IMAGE_SHAPE": [192, 448, 3]})(), training=False)


def test_pad64_image_too_large_for_the_input_names_tiling():
    cfg = make_cfg_scale(IMAGE_RESIZE_MODE="pad64", IMAGE_MIN_DIM=None, IMAGE_SHAPE=[128, 128, 3])
    out, window, _, _, _ = fit_image(smooth_image(100, 120), cfg, training=False)
    assert out.shape == (128, 128, 3) and tuple(window) == (14, 4, 114, 124)
    # 150x100 pads to 192x128: larger than the input
    with pytest.raises(ValueError, match=r"192x128 after resizing, larger than the model input "
                                         r"128x128.*detect_tiled\(model, image\)"):
        fit_image(smooth_image(150, 100), cfg, training=False)


def test_draw_image_scale_is_log_uniform_in_the_range_and_seeded():
    cfg = make_cfg_scale(IMAGE_SCALE_RANGE=(1.5, 2.5))
    rng = np.random.default_rng(0)
    draws = np.array([draw_image_scale(cfg, rng) for _ in range(4000)])
    assert draws.min() >= 1.5 and draws.max() <= 2.5
    # log-uniform: the median is the geometric mean, a quarter below 1.5**.75 * 2.5**.25
    assert np.median(draws) == pytest.approx(np.sqrt(1.5 * 2.5), abs=0.03)
    assert np.mean(draws < 1.5 ** 0.75 * 2.5 ** 0.25) == pytest.approx(0.25, abs=0.03)
    assert draw_image_scale(cfg, 7) == draw_image_scale(cfg, 7)
    assert draw_image_scale(cfg, 7) != draw_image_scale(cfg, 8)
    # the training cache stores unscaled samples when the scale is random
    assert prepared_image_scale(cfg) == 1.0
    fixed = make_cfg_scale(IMAGE_SCALE=1.75)
    assert draw_image_scale(fixed, 3) == prepared_image_scale(fixed) == 1.75
    assert draw_image_scale(make_cfg_scale(IMAGE_SCALE_RANGE=(2, 2)), 3) == 2.0


def test_scale_for_model_crop_mode_scales_without_cropping():
    cfg = make_cfg_scale(IMAGE_RESIZE_MODE="crop", IMAGE_MIN_DIM=64, IMAGE_SCALE=1.5)
    image, window, scale, padding = scale_for_model(smooth_image(), cfg)
    assert image.shape == (150, 300, 3) and window == (0, 0, 150, 300) and scale == 1.5


def make_cfg_scale(**values):
    return type("S", (Cfg,), values)()


@pytest.mark.parametrize("values, message", [
    ({"IMAGE_SCALE": 0}, "IMAGE_SCALE must be a finite number > 0.*got 0"),
    ({"IMAGE_SCALE": -2.0}, "IMAGE_SCALE must be a finite number > 0.*got -2.0"),
    ({"IMAGE_SCALE": float("nan")}, "IMAGE_SCALE must be a finite number > 0.*got nan"),
    ({"IMAGE_SCALE": "2"}, "IMAGE_SCALE must be a finite number > 0.*got '2'"),
    ({"IMAGE_SCALE": True}, "IMAGE_SCALE must be a finite number > 0.*got True"),
    ({"IMAGE_SCALE_RANGE": (2.5, 1.5)}, r"IMAGE_SCALE_RANGE must be None or \(lo, hi\).*"
                                        r"got \(2.5, 1.5\)"),
    ({"IMAGE_SCALE_RANGE": (0, 2)}, r"IMAGE_SCALE_RANGE .*got \(0, 2\)"),
    ({"IMAGE_SCALE_RANGE": (1.5,)}, r"IMAGE_SCALE_RANGE .*got \(1.5,\)"),
    ({"IMAGE_SCALE_RANGE": "1,2"}, r"IMAGE_SCALE_RANGE .*got '1,2'"),
])
def test_config_refuses_bad_scales(values, message):
    with pytest.raises(ValueError, match=message):
        make_cfg_scale(**values)


def test_config_scale_settings_round_trip_json(tmp_path):
    cfg = make_cfg_scale(IMAGE_SCALE=2.0, IMAGE_SCALE_RANGE=(1.5, 2.5))
    assert cfg.IMAGE_SCALE == 2.0 and tuple(cfg.IMAGE_SCALE_RANGE) == (1.5, 2.5)
    save_config(cfg, tmp_path / "config.json")
    again = load_config(tmp_path / "config.json")
    assert again.IMAGE_SCALE == 2.0 and tuple(again.IMAGE_SCALE_RANGE) == (1.5, 2.5)
    assert draw_image_scale(again, 4) == draw_image_scale(cfg, 4)
    assert make_cfg_scale().IMAGE_SCALE == 1.0 and make_cfg_scale().IMAGE_SCALE_RANGE is None


def test_padded_size_rounds_each_side_up():
    assert padded_size((520, 704, 3)) == (576, 704)
    assert padded_size((1, 64)) == (64, 64)
    assert padded_size((65, 128)) == (128, 128)
    assert padded_size((100, 30), multiple=32) == (128, 32)
    assert padded_size(np.array([255, 257])) == (256, 320)
