import numpy as np

from mrcnn.data.image_meta import compose_image_meta
from mrcnn.layers.batching import LeadingRois
from mrcnn.layers.image_meta import NormalizedWindow, ZeroOutsideWindow


def test_zero_outside_window_matches_numpy():
    rng = np.random.default_rng(0)
    image = rng.normal(size=(2, 8, 10, 3)).astype("float32")
    windows = [(1, 2, 7, 9), (0, 0, 8, 10)]
    meta = np.stack([compose_image_meta(0, (8, 10, 3), (8, 10, 3), w, 1.0, np.ones(3))
                     for w in windows]).astype("float32")
    got = np.asarray(ZeroOutsideWindow()([image, meta]))
    want = np.zeros_like(image)
    for b, (y1, x1, y2, x2) in enumerate(windows):
        want[b, y1:y2, x1:x2] = image[b, y1:y2, x1:x2]
    np.testing.assert_array_equal(got, want)


def test_normalized_window_and_leading_rois():
    meta = compose_image_meta(0, (50, 90, 3), (64, 128, 3), (7, 0, 57, 128), 1.0,
                              np.ones(2))[None].astype("float32")
    w = np.asarray(NormalizedWindow((64, 128))(meta))[0]
    np.testing.assert_allclose(w, [7 / 63, 0, 56 / 63, 127 / 127], rtol=1e-6)
    x = np.arange(24, dtype="float32").reshape(2, 4, 3)
    np.testing.assert_array_equal(np.asarray(LeadingRois(2)(x)), x[:, :2])
