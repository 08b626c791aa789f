"""Tests of mrcnn.layers.pyramid_roi_align against a NumPy loop reference."""

import math

import keras
import numpy as np
import pytest
from keras import ops

from helpers import run_layer_test
from mrcnn.layers.pyramid_roi_align import PyramidROIAlign, roi_pyramid_levels


def _np_bilinear_crop(image, box, crop_size):
    """tf.image.crop_and_resize of one box, with explicit loops."""
    height, width, channels = image.shape
    ch, cw = crop_size
    y1, x1, y2, x2 = box
    out = np.zeros((ch, cw, channels), np.float64)
    for i in range(ch):
        y = (y1 * (height - 1) + i * (y2 - y1) * (height - 1) / (ch - 1)
             if ch > 1 else 0.5 * (y1 + y2) * (height - 1))
        for j in range(cw):
            x = (x1 * (width - 1) + j * (x2 - x1) * (width - 1) / (cw - 1)
                 if cw > 1 else 0.5 * (x1 + x2) * (width - 1))
            if not (0 <= y <= height - 1 and 0 <= x <= width - 1):
                continue
            y0, x0 = int(math.floor(y)), int(math.floor(x))
            ya, xa = min(y0 + 1, height - 1), min(x0 + 1, width - 1)
            fy, fx = y - y0, x - x0
            top = image[y0, x0] * (1 - fx) + image[y0, xa] * fx
            bottom = image[ya, x0] * (1 - fx) + image[ya, xa] * fx
            out[i, j] = top * (1 - fy) + bottom * fy
    return out


def _np_level(box, image_shape):
    h, w = box[2] - box[0], box[3] - box[1]
    if h * w <= 0:
        return 2
    value = math.log2(math.sqrt(h * w) / (224.0 / math.sqrt(
        image_shape[0] * image_shape[1])))
    return int(min(5, max(2, 4 + np.round(value))))


def test_levels_hand_cases():
    image_shape = (224, 224)
    # Box sides (normalized) 1 -> P4 + log2(1) = 4; 0.5 -> 3; 0.25 -> 2;
    # 0.125 -> clipped to 2; a full box of a 4x larger image -> 5.
    boxes = np.array([[0, 0, 1, 1], [0, 0, .5, .5], [0, 0, .25, .25],
                      [0, 0, .125, .125], [0, 0, 0, 0]], np.float32)
    levels = ops.convert_to_numpy(roi_pyramid_levels(boxes, image_shape))
    np.testing.assert_array_equal(levels, [2, 1, 0, 0, 0])
    big = ops.convert_to_numpy(roi_pyramid_levels(boxes[:1], (896, 896)))
    np.testing.assert_array_equal(big, [3])


def test_pyramid_roi_align_matches_loop_reference():
    rng = np.random.default_rng(0)
    image_shape = (512, 512, 3)
    batch, num, channels, pool = 2, 12, 3, (5, 4)
    maps = [rng.normal(size=(batch, 512 // s, 512 // s, channels)).astype(
        "f4") for s in (4, 8, 16, 32)]
    # Boxes of sizes spread over every level, some sticking out of the image.
    sides = np.exp(rng.uniform(np.log(0.05), np.log(1.2), size=(batch, num)))
    centres = rng.uniform(0, 1, size=(batch, num, 2))
    aspect = rng.uniform(0.6, 1.6, size=(batch, num))
    h, w = sides * aspect, sides / aspect
    boxes = np.stack([centres[..., 0] - h / 2, centres[..., 1] - w / 2,
                      centres[..., 0] + h / 2, centres[..., 1] + w / 2],
                     axis=-1).astype("f4")
    boxes[1, -2:] = 0.0  # padding rows
    layer = PyramidROIAlign(pool, image_shape)
    out = ops.convert_to_numpy(layer([boxes] + maps))
    assert out.shape == (batch, num) + pool + (channels,)
    assert np.all(np.isfinite(out))
    seen_levels = set()
    for b in range(batch):
        for n in range(num):
            level = _np_level(boxes[b, n], image_shape)
            seen_levels.add(level)
            expected = _np_bilinear_crop(maps[level - 2][b], boxes[b, n], pool)
            np.testing.assert_allclose(out[b, n], expected, rtol=1e-4,
                                       atol=1e-4)
    assert seen_levels == {2, 3, 4, 5}


def test_pyramid_roi_align_padding_boxes_in_jitted_model():
    image_shape = (64, 64, 3)
    boxes_in = keras.Input(shape=(3, 4), batch_size=1)
    map_inputs = [keras.Input(shape=(64 // s, 64 // s, 2), batch_size=1)
                  for s in (4, 8, 16, 32)]
    layer = PyramidROIAlign((3, 3), image_shape)
    model = keras.Model([boxes_in] + map_inputs,
                        layer([boxes_in] + map_inputs))
    boxes = np.zeros((1, 3, 4), "f4")
    boxes[0, 0] = [0.1, 0.1, 0.6, 0.5]
    maps = [np.ones((1, 64 // s, 64 // s, 2), "f4") for s in (4, 8, 16, 32)]
    out = model.predict([boxes] + maps, verbose=0)
    assert out.shape == (1, 3, 3, 3, 2)
    assert np.all(np.isfinite(out))
    np.testing.assert_allclose(out[0, 0], 1.0, rtol=1e-6)
    # compute_output_shape([(1, 3, 4), maps...]) == (1, 3, 3, 3, 2); the
    # from_config clone has the same config by value; random maps so that
    # the clone's and the saved model's values are meaningful.
    rng = np.random.default_rng(1)
    maps = [rng.normal(size=m.shape).astype("f4") for m in maps]
    run_layer_test(PyramidROIAlign((3, 3), image_shape), [boxes] + maps,
                   expected_output_shape=(1, 3, 3, 3, 2))


def test_pyramid_roi_align_rejects_bad_arguments():
    with pytest.raises(ValueError, match="pool_shape"):
        PyramidROIAlign((7,), (64, 64, 3))
    with pytest.raises(ValueError, match="image_shape"):
        PyramidROIAlign((7, 7), (64,))
