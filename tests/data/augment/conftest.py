"""Shared test images for the augmenters: bright squares under their masks."""

import numpy as np
import pytest

SQUARES = ((8, 10, 22), (50, 60, 20), (70, 12, 24), (14, 90, 18), (95, 95, 16))


def _bright_squares(height=120, width=128, squares=SQUARES):
    """Dark image with bright squares; mask k covers exactly square k."""
    image = np.full((height, width, 3), 20, np.uint8)
    masks = np.zeros((height, width, len(squares)), bool)
    for k, (y, x, size) in enumerate(squares):
        image[y:y + size, x:x + size] = 200
        masks[y:y + size, x:x + size, k] = True
    return image, masks


def _alignment(image, masks, dim=110, strong=110):
    """(share of mask pixels brighter than `dim`, share of pixels brighter
    than `strong` that lie under a mask)."""
    covered = masks.any(axis=2)
    value = image[:, :, 0]
    precision = (covered & (value > dim)).sum() / max(covered.sum(), 1)
    recall = (covered & (value > strong)).sum() / max((value > strong).sum(), 1)
    return precision, recall


def _assert_masks_follow_squares(augmenter, resampling=False):
    """Run `augmenter` with 4 seeds; its masks must stay on the bright squares.

    Exact transforms keep every mask pixel bright and every bright pixel
    under a mask. Resampling ones interpolate the image bilinearly (squares
    200 on 20, zeros outside the image) while the masks take the nearest
    source pixel: aligned, a mask pixel's nearest source is bright, with
    weight >= 1/4: value >= 50; a pixel above 190 has weight >= 0.94 on
    bright sources, so its nearest source is bright and a mask covers it.
    """
    image, masks = _bright_squares()
    for seed in range(4):
        out_image, out_masks = augmenter(image, masks, np.random.default_rng(seed))
        if resampling:
            assert _alignment(out_image, out_masks, dim=45, strong=190) == (1.0, 1.0), seed
        else:
            assert out_masks.shape[:2] == out_image.shape[:2]
            assert out_masks.shape[2] == masks.shape[2]
            assert _alignment(out_image, out_masks) == (1.0, 1.0)


@pytest.fixture
def bright_squares():
    """``bright_squares(height=120, width=128, squares=SQUARES) -> (image, masks)``."""
    return _bright_squares


@pytest.fixture
def alignment():
    """``alignment(image, masks, dim=110, strong=110) -> (precision, recall)``."""
    return _alignment


@pytest.fixture
def assert_masks_follow_squares():
    """``assert_masks_follow_squares(augmenter, resampling=False)``."""
    return _assert_masks_follow_squares
