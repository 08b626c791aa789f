import numpy as np
import pytest

from mrcnn.config import Config
from mrcnn.data.image_meta import compose_image_meta, image_meta_size, parse_image_meta

# Backend-independent: NumPy image_meta compose / parse; no Keras op.
pytestmark = pytest.mark.backend_independent


def test_layout_by_hand():
    meta = compose_image_meta(7, (100, 200, 3), (256, 256, 3), (64, 0, 192, 256), 1.28,
                              [1, 1, 0, 1])
    expected = [7, 100, 200, 3, 256, 256, 3, 64, 0, 192, 256, 1.28, 1, 1, 0, 1]
    assert meta.dtype == np.float32
    np.testing.assert_allclose(meta, np.array(expected, np.float32))
    assert meta.shape == (image_meta_size(4),) == (16,)


def test_size_matches_config():
    class C(Config):
        NUM_CLASSES = 5
        IMAGE_MAX_DIM = 256
        IMAGE_MIN_DIM = 128

    assert image_meta_size(5) == C().IMAGE_META_SIZE == 17


def test_round_trip_single():
    meta = compose_image_meta(123456, (520, 704, 3), (576, 704, 3), (28, 0, 548, 704), 1.0,
                              np.array([1, 1, 1, 0]))
    parsed = parse_image_meta(meta)
    assert parsed["image_id"] == 123456
    np.testing.assert_array_equal(parsed["original_image_shape"], [520, 704, 3])
    np.testing.assert_array_equal(parsed["image_shape"], [576, 704, 3])
    np.testing.assert_array_equal(parsed["window"], [28, 0, 548, 704])
    assert parsed["scale"] == pytest.approx(1.0)
    np.testing.assert_array_equal(parsed["active_class_ids"], [1, 1, 1, 0])
    assert parsed["window"].dtype == np.int32


def test_round_trip_batch():
    metas = np.stack([
        compose_image_meta(i, (100 + i, 200, 3), (256, 256, 3), (i, 0, 100 + i, 200),
                           0.5 * (i + 1), [1, 0, 1])
        for i in range(3)])
    parsed = parse_image_meta(metas)
    np.testing.assert_array_equal(parsed["image_id"], [0, 1, 2])
    np.testing.assert_array_equal(parsed["original_image_shape"][:, 0], [100, 101, 102])
    np.testing.assert_array_equal(parsed["window"][:, 0], [0, 1, 2])
    np.testing.assert_allclose(parsed["scale"], [0.5, 1.0, 1.5])
    assert parsed["active_class_ids"].shape == (3, 3)


def test_errors():
    with pytest.raises(ValueError, match="window must have 4 values"):
        compose_image_meta(0, (1, 2, 3), (1, 2, 3), (0, 0, 1), 1.0, [1, 1])
    with pytest.raises(ValueError, match="original_image_shape must have 3"):
        compose_image_meta(0, (1, 2), (1, 2, 3), (0, 0, 1, 2), 1.0, [1, 1])
    with pytest.raises(ValueError, match="meta_size"):
        parse_image_meta(np.zeros(12))
