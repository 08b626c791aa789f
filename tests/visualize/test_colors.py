"""Tests for mrcnn/visualize/colors.py: instance colours, mask blending, display conversion."""

import numpy as np
import pytest

from mrcnn.visualize.colors import apply_mask, blend_instances, display_rgb, random_colors

# Backend-independent: colours and NumPy mask blending; no Keras op.
pytestmark = pytest.mark.backend_independent


def test_random_colors_are_evenly_spaced_hues_and_reproducible():
    from matplotlib.colors import rgb_to_hsv
    colors = random_colors(6)
    assert colors == random_colors(6)
    hsv = rgb_to_hsv(np.array(colors))
    np.testing.assert_allclose(np.sort(hsv[:, 0]), np.arange(6) / 6, atol=1e-9)
    np.testing.assert_allclose(hsv[:, 1:], 1.0)
    dim = rgb_to_hsv(np.array(random_colors(4, bright=False)))
    np.testing.assert_allclose(dim[:, 2], 0.7)
    assert random_colors(0) == []
    with pytest.raises(ValueError, match="non-negative integer"):
        random_colors(-1)


def test_apply_mask_blends_in_place_hand_values():
    image = np.full((3, 4, 3), 100, np.uint8)
    mask = np.zeros((3, 4), bool)
    mask[1, 1:3] = True
    out = apply_mask(image, mask, (1.0, 0.2, 0.0), alpha=0.4)
    assert out is image
    # 0.6 * 100 + 0.4 * 255 * (1, 0.2, 0) = (162, 80.4, 60) -> (162, 80, 60)
    np.testing.assert_array_equal(image[1, 1], [162, 80, 60])
    np.testing.assert_array_equal(image[1, 2], [162, 80, 60])
    assert (image[~mask] == 100).all()
    floats = np.zeros((2, 2, 3))
    apply_mask(floats, np.eye(2, dtype=bool), (0.5, 0.5, 0.5, 1.0), alpha=1.0)
    np.testing.assert_allclose(floats[0, 0], 127.5)
    with pytest.raises(ValueError, match=r"mask must be \[H, W\]"):
        apply_mask(image, np.zeros((2, 2), bool), (1, 0, 0))


def test_display_rgb_keeps_0_255_images_and_makes_them_rgb():
    gray = np.array([[0, 128]], np.uint8)
    np.testing.assert_array_equal(display_rgb(gray), [[[0, 0, 0], [128, 128, 128]]])
    np.testing.assert_array_equal(display_rgb(gray[:, :, None]), display_rgb(gray))
    # Floats in 0..1 are scaled by 255 (127.5 rounds to even 128); RGBA drops alpha.
    rgba = np.array([[[0.5, 1.0, 0.0, 0.2]]])
    np.testing.assert_array_equal(display_rgb(rgba), [[[128, 255, 0]]])
    np.testing.assert_array_equal(display_rgb(np.array([[True, False]])),
                                  [[[255, 255, 255], [0, 0, 0]]])
    # Values beyond 0..255 are stretched: the two levels become 0 and 255.
    np.testing.assert_array_equal(display_rgb(np.array([[1000, 3000]], np.uint16))[..., 0],
                                  [[0, 255]])
    with pytest.raises(ValueError, match=r"got shape \(1, 2, 5\)"):
        display_rgb(np.zeros((1, 2, 5)))
    with pytest.raises(TypeError, match="unsupported image dtype complex128"):
        display_rgb(np.zeros((1, 2), complex))


def test_blend_instances_puts_the_last_instance_on_top():
    rgb = np.zeros((1, 3, 3), np.uint8)
    masks = np.array([[[True, False], [True, True], [False, False]]])   # [1, 3, 2]
    colors = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    out = blend_instances(rgb, masks, colors, np.array([1.0, 0.5]))
    # Pixel 0: instance 0 at full opacity; pixel 1: instance 1 on top, 0.5 * 255 -> 128.
    np.testing.assert_array_equal(out, [[[255, 0, 0], [0, 128, 0], [0, 0, 0]]])
    assert (rgb == 0).all()                                  # the input is not changed
