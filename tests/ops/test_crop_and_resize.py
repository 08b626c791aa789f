"""crop_and_resize / multilevel_crop_and_resize vs a loop NumPy reference."""

import numpy as np
import pytest

import keras
from keras import ops

from mrcnn.ops.crop_and_resize import crop_and_resize, multilevel_crop_and_resize

METHODS = ["generic"] + (["native"] if keras.backend.backend() == "tensorflow" else [])


def reference_crop_and_resize(images, boxes, box_indices, crop_size):
    """Plain loops over boxes and output pixels, bilinear by hand."""
    _, height, width, channels = images.shape
    ch, cw = crop_size
    out = np.zeros((len(boxes), ch, cw, channels), np.float64)
    for n, (y1, x1, y2, x2) in enumerate(boxes):
        image = images[box_indices[n]].astype(np.float64)
        for i in range(ch):
            if ch > 1:
                y = y1 * (height - 1) + i * (y2 - y1) * (height - 1) / (ch - 1)
            else:
                y = 0.5 * (y1 + y2) * (height - 1)
            if y < 0 or y > height - 1:
                continue
            for j in range(cw):
                if cw > 1:
                    x = x1 * (width - 1) + j * (x2 - x1) * (width - 1) / (cw - 1)
                else:
                    x = 0.5 * (x1 + x2) * (width - 1)
                if x < 0 or x > width - 1:
                    continue
                top, left = int(np.floor(y)), int(np.floor(x))
                bottom, right = int(np.ceil(y)), int(np.ceil(x))
                dy, dx = y - top, x - left
                out[n, i, j] = (
                    image[top, left] * (1 - dy) * (1 - dx)
                    + image[top, right] * (1 - dy) * dx
                    + image[bottom, left] * dy * (1 - dx)
                    + image[bottom, right] * dy * dx
                )
    return out


def random_boxes(rng, n):
    """Mix of inside, partly outside, tiny, degenerate and flipped boxes."""
    centre = rng.uniform(-0.2, 1.2, size=(n, 2))
    size = rng.uniform(0.0, 0.8, size=(n, 2)) * rng.choice([1e-3, 1.0], (n, 1))
    boxes = np.concatenate([centre - size / 2, centre + size / 2], axis=1)
    boxes[0] = [0.0, 0.0, 1.0, 1.0]  # whole image
    boxes[1] = [0.3, 0.4, 0.3, 0.4]  # a single point
    boxes[2] = [0.9, 0.8, 0.1, 0.2]  # flipped (y2 < y1): mirrored crop
    boxes[3] = [-0.5, -0.5, 1.5, 1.5]  # larger than the image
    return boxes.astype(np.float32)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("crop_size", [(7, 7), (1, 1), (1, 5), (4, 1), (14, 9)])
def test_crop_and_resize_matches_reference(method, crop_size):
    rng = np.random.default_rng(0)
    images = rng.normal(size=(3, 11, 17, 5)).astype(np.float32)
    boxes = random_boxes(rng, 40)
    box_indices = rng.integers(0, 3, size=40).astype(np.int32)
    got = ops.convert_to_numpy(
        crop_and_resize(images, boxes, box_indices, crop_size, method=method)
    )
    want = reference_crop_and_resize(images, boxes, box_indices, crop_size)
    assert got.shape == (40,) + crop_size + (5,)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("method", METHODS)
def test_crop_and_resize_hand_case(method):
    # 2x2 image [[0, 1], [2, 3]]; box over the whole image, 3x3 crop
    # samples the pixel grid at 0, 0.5, 1 in both directions.
    image = np.array([[0.0, 1.0], [2.0, 3.0]], np.float32)[None, :, :, None]
    got = ops.convert_to_numpy(
        crop_and_resize(image, [[0.0, 0.0, 1.0, 1.0]], [0], (3, 3), method=method)
    )[0, :, :, 0]
    want = np.array([[0.0, 0.5, 1.0], [1.0, 1.5, 2.0], [2.0, 2.5, 3.0]])
    np.testing.assert_allclose(got, want, atol=1e-6)
    # A box entirely above the image is all extrapolation (0).
    got = ops.convert_to_numpy(
        crop_and_resize(image + 5, [[-2.0, 0.0, -1.0, 1.0]], [0], (2, 2), method=method)
    )
    np.testing.assert_array_equal(got, 0.0)


def test_generic_matches_reference_under_jit():
    rng = np.random.default_rng(1)
    images = rng.normal(size=(2, 9, 8, 3)).astype(np.float32)
    boxes = random_boxes(rng, 12)
    box_indices = rng.integers(0, 2, size=12).astype(np.int32)
    want = reference_crop_and_resize(images, boxes, box_indices, (5, 6))
    backend = keras.backend.backend()
    fn = lambda i, b, k: crop_and_resize(i, b, k, (5, 6), method="generic")  # noqa: E731
    if backend == "jax":
        import jax

        fn = jax.jit(fn)
    elif backend == "tensorflow":
        import tensorflow as tf

        fn = tf.function(fn, jit_compile=True)
    got = ops.convert_to_numpy(fn(images, boxes, box_indices))
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_generic_gradient_wrt_images_matches_reference():
    # d(sum(crop * g)) / d(images) is linear in g: compare with the
    # reference evaluated on unit images (finite differences are exact
    # because the op is linear in the image).
    if keras.backend.backend() not in ("tensorflow", "jax"):
        pytest.skip("gradient check written for tensorflow / jax")
    rng = np.random.default_rng(2)
    images = rng.normal(size=(2, 5, 6, 1)).astype(np.float32)
    boxes = random_boxes(rng, 6)
    box_indices = np.array([0, 1, 1, 0, 1, 0], np.int32)
    g = rng.normal(size=(6, 3, 4, 1)).astype(np.float32)

    def loss(x):
        crops = crop_and_resize(x, boxes, box_indices, (3, 4), method="generic")
        return ops.sum(crops * g)

    if keras.backend.backend() == "jax":
        import jax

        grad = np.asarray(jax.grad(loss)(images))
    else:
        import tensorflow as tf

        x = tf.constant(images)
        with tf.GradientTape() as tape:
            tape.watch(x)
            value = loss(x)
        grad = tape.gradient(value, x).numpy()
    want = np.zeros_like(images, np.float64)
    for index in np.ndindex(images.shape):
        unit = np.zeros_like(images)
        unit[index] = 1.0
        crops = reference_crop_and_resize(unit, boxes, box_indices, (3, 4))
        want[index] = np.sum(crops * g)
    np.testing.assert_allclose(grad, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("crop_size", [(7, 7), (1, 1), (3, 5)])
def test_multilevel_matches_reference(method, crop_size):
    rng = np.random.default_rng(3)
    sizes = [(16, 20), (8, 10), (4, 5), (2, 3)]
    maps = [rng.normal(size=(2, h, w, 3)).astype(np.float32) for h, w in sizes]
    boxes = np.stack([random_boxes(rng, 15), random_boxes(rng, 15)])
    levels = rng.integers(0, 4, size=(2, 15)).astype(np.int32)
    got = ops.convert_to_numpy(
        multilevel_crop_and_resize(maps, boxes, levels, crop_size, method=method)
    )
    assert got.shape == (2, 15) + crop_size + (3,)
    for b in range(2):
        for n in range(15):
            want = reference_crop_and_resize(
                maps[levels[b, n]], boxes[b, n : n + 1], [b], crop_size
            )[0]
            np.testing.assert_allclose(got[b, n], want, rtol=1e-5, atol=1e-5)


def test_bad_arguments_raise():
    images = np.zeros((1, 4, 4, 1), np.float32)
    with pytest.raises(ValueError, match="crop_size"):
        crop_and_resize(images, np.zeros((1, 4)), [0], (0, 3))
    with pytest.raises(ValueError, match="method"):
        crop_and_resize(images, np.zeros((1, 4)), [0], (2, 2), method="fast")
    with pytest.raises(ValueError, match="images"):
        crop_and_resize(images[0], np.zeros((1, 4)), [0], (2, 2))
    with pytest.raises(ValueError, match="channel"):
        multilevel_crop_and_resize(
            [images, np.zeros((1, 2, 2, 3), np.float32)],
            np.zeros((1, 1, 4)),
            np.zeros((1, 1), np.int32),
            (2, 2),
        )
    if keras.backend.backend() != "tensorflow":
        with pytest.raises(ValueError, match="native"):
            crop_and_resize(images, np.zeros((1, 4)), [0], (2, 2), method="native")


def test_box_edge_at_one_samples_last_pixel():
    # A box ending at exactly 1.0 must sample the last row / column, not 0
    # from float rounding pushing the sample just past H - 1. (The native
    # tf.image kernel does drop it for some sizes, e.g. H=56 with a 28x28
    # crop of [0, 0, 1, 1]; the generic path is endpoint exact.)
    rng = np.random.default_rng(4)
    for height in (8, 16, 56):
        images = rng.uniform(1.0, 2.0, size=(1, height, height, 1)).astype(np.float32)
        for crop in (14, 28):
            boxes = np.array([[0.0, 0.0, 1.0, 1.0], [0.3, 0.7, 1.0, 1.0]], np.float32)
            got = ops.convert_to_numpy(
                crop_and_resize(images, boxes, [0, 0], (crop, crop), method="generic")
            )
            np.testing.assert_allclose(
                got[:, -1, -1, 0], images[0, -1, -1, 0], rtol=1e-5
            )


def test_default_method_inside_xla_uses_generic():
    if keras.backend.backend() != "tensorflow":
        pytest.skip("XLA fallback only concerns the TensorFlow backend")
    import tensorflow as tf

    rng = np.random.default_rng(5)
    maps = [rng.normal(size=(1, s, s, 2)).astype(np.float32) for s in (8, 4)]
    boxes = random_boxes(rng, 6)[None]
    levels = np.array([[0, 1, 0, 1, 1, 0]], np.int32)

    @tf.function(jit_compile=True)
    def fn(m0, m1, b, l):
        single = crop_and_resize(m0, b[0], tf.zeros(6, tf.int32), (3, 3))
        multi = multilevel_crop_and_resize([m0, m1], b, l, (3, 3))
        return single, multi

    single, multi = fn(maps[0], maps[1], boxes, levels)
    want = reference_crop_and_resize(maps[0], boxes[0], np.zeros(6, int), (3, 3))
    np.testing.assert_allclose(single.numpy(), want, rtol=1e-5, atol=1e-5)
    for n in range(6):
        want = reference_crop_and_resize(maps[levels[0, n]], boxes[0, n : n + 1], [0], (3, 3))
        np.testing.assert_allclose(multi.numpy()[0, n], want[0], rtol=1e-5, atol=1e-5)


@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="native is TensorFlow's")
def test_native_multilevel_gradients_and_clipped_levels_match_generic():
    """The native path (each level's boxes cropped on that level, stitched back) against the
    generic one: the same crops, levels outside [0, L) clipped, and the same gradients with
    respect to every level's map (the training graph's ROIAlign on TensorFlow)."""
    import tensorflow as tf

    rng = np.random.default_rng(7)
    sizes = [(12, 10), (6, 5), (3, 3)]
    maps = [tf.constant(rng.normal(size=(2, h, w, 4)).astype(np.float32)) for h, w in sizes]
    boxes = np.stack([random_boxes(rng, 9), random_boxes(rng, 9)])
    levels = rng.integers(-1, 5, size=(2, 9)).astype(np.int32)    # -1 and 3, 4 clip
    levels[0, :3] = 1                                              # a level with many boxes
    weights = tf.constant(rng.normal(size=(2, 9, 3, 2, 4)).astype(np.float32))
    results = {}
    for method in ("native", "generic"):
        with tf.GradientTape() as tape:
            tape.watch(maps)
            crops = multilevel_crop_and_resize(maps, boxes, levels, (3, 2), method=method)
            loss = tf.reduce_sum(crops * weights)
        results[method] = (crops.numpy(), [g.numpy() for g in tape.gradient(loss, maps)])
    np.testing.assert_allclose(results["native"][0], results["generic"][0], rtol=1e-5,
                               atol=1e-5)
    for got, want in zip(results["native"][1], results["generic"][1]):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    assert np.abs(results["native"][1][2]).sum() > 0    # boxes past the last level sample it
