"""Tests for mrcnn/results.py: dense/sparse round trips and result validation."""

import numpy as np
import pytest
from result_helpers import make_result, random_discs

from mrcnn.data.masks import SparseMasks
from mrcnn.inference.results import (compact, expand, from_state, score_order, select_state,
                                     to_state)

# Backend-independent: dense / sparse result round trips in NumPy; no model.
pytestmark = pytest.mark.backend_independent


def test_compact_expand_round_trip_keeps_every_field():
    rng = np.random.default_rng(0)
    masks = random_discs(rng, n=6)
    soft = masks * rng.uniform(0.5, 1.0, masks.shape).astype(np.float32)
    r = make_result(masks, rng.random(6), class_ids=rng.integers(1, 4, 6), soft=soft)
    small = compact(r)
    assert isinstance(small["masks"], SparseMasks)
    assert isinstance(small["soft_masks"], SparseMasks)
    back = expand(small)
    for key in ("rois", "class_ids", "scores", "masks"):
        np.testing.assert_array_equal(back[key], r[key])
    np.testing.assert_allclose(back["soft_masks"], soft)
    # Missing rois are computed from the masks.
    no_rois = {k: v for k, v in r.items() if k != "rois"}
    np.testing.assert_array_equal(expand(no_rois)["rois"], r["rois"])


def test_state_keeps_the_input_form_and_selects():
    masks = random_discs(np.random.default_rng(1), n=4)
    r = make_result(masks, [0.3, 0.9, 0.9, 0.1])
    state, dense = to_state(r)
    assert dense and isinstance(state["masks"], SparseMasks) and state["soft"] is None
    picked = select_state(state, np.array([False, True, False, True]))
    out = from_state(picked, dense)
    np.testing.assert_array_equal(out["masks"], masks[..., [1, 3]])
    assert out["scores"].tolist() == pytest.approx([0.9, 0.1])
    assert not to_state(compact(r))[1]
    # Decreasing score, ties in input order.
    assert score_order([0.3, 0.9, 0.9, 0.1]).tolist() == [1, 2, 0, 3]


def test_to_state_rejects_bad_results():
    with pytest.raises(TypeError, match="must be a dict"):
        to_state([1, 2])
    with pytest.raises(ValueError, match=r"lacks \['scores'\]"):
        to_state({"class_ids": [], "masks": np.zeros((2, 2, 0), bool)})
    r = make_result(np.zeros((4, 4, 2), bool), [0.5, 0.6])
    r["rois"] = np.zeros((2, 3))
    with pytest.raises(ValueError, match=r"r\['rois'\] must be \[N, \(y1, x1, y2, x2\)\]"):
        to_state(r, name="r")
