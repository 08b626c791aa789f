"""Detection results and the sparse form the post-processing works on (NumPy).

A *result* is a dict as returned by ``MaskRCNN.detect``:

* ``rois``: int32 ``[N, (y1, x1, y2, x2)]`` pixel boxes, y2/x2 exclusive
  (optional on input: computed from the masks when missing);
* ``class_ids``: int32 ``[N]``; ``scores``: float32 ``[N]``;
* ``masks``: bool ``[H, W, N]``, or a :class:`~mrcnn.data.masks.sparse.SparseMasks`;
* optional ``soft_masks``: float ``[H, W, N]`` mask probabilities (or a
  ``SparseMasks`` with values).

:func:`compact` and :func:`expand` switch a result between sparse and dense
masks. The other functions are the building blocks shared by
`mrcnn.inference.postprocess` and `mrcnn.inference.tta`: :func:`to_state` validates a result
and turns it into a *state* dict (``rois``, ``class_ids``, ``scores``,
binary ``masks`` and ``soft`` SparseMasks), the steps transform states, and
:func:`from_state` turns a state back into a result whose masks have the
input's form.
"""

import numpy as np

from mrcnn.data.masks.sparse import SparseMasks

__all__ = ["compact", "expand", "to_state", "from_state", "select_state", "with_masks",
           "score_order"]


def to_state(result, name="result"):
    """Validates a result dict and converts it to sparse form.

    Args:
        result: a detect() result (see the module docstring).
        name: what error messages call it.

    Returns:
        ``(state, dense)``: state dict with ``rois`` int32 ``[N, 4]``,
        ``class_ids`` int32 ``[N]``, ``scores`` float32 ``[N]``, ``masks``
        binary SparseMasks, ``soft`` SparseMasks with values or None; ``dense``
        tells whether the input masks were an array.
    """
    if not isinstance(result, dict):
        raise TypeError(f"{name} must be a dict with rois, class_ids, scores and "
                        f"masks (a detect() result), got {type(result).__name__}")
    missing = [k for k in ("class_ids", "scores", "masks") if k not in result]
    if missing:
        raise ValueError(f"{name} lacks {missing}; expected keys rois, class_ids, "
                         f"scores, masks (and optionally soft_masks)")
    masks = result["masks"]
    dense = not isinstance(masks, SparseMasks)
    masks = SparseMasks.from_dense(masks) if dense else masks.binary()
    n = masks.count
    class_ids = np.asarray(result["class_ids"]).astype(np.int32).reshape(-1)
    scores = np.asarray(result["scores"]).astype(np.float32).reshape(-1)
    rois = result.get("rois")
    rois = masks.boxes() if rois is None else np.asarray(rois).astype(np.int32)
    if rois.ndim != 2 or rois.shape[1] != 4:
        raise ValueError(f"{name}['rois'] must be [N, (y1, x1, y2, x2)], got shape "
                         f"{rois.shape}")
    for key, arr in (("class_ids", class_ids), ("scores", scores), ("rois", rois)):
        if arr.shape[0] != n:
            raise ValueError(f"{name}['{key}'] has {arr.shape[0]} entries but "
                             f"masks hold {n} instances")
    soft = result.get("soft_masks")
    if soft is not None:
        soft = soft if isinstance(soft, SparseMasks) else \
            SparseMasks.from_dense(soft, soft=True)
        if soft.shape != masks.shape or soft.count != n:
            raise ValueError(f"{name}['soft_masks'] holds {soft.count} instances of "
                             f"{soft.shape}, masks {n} of {masks.shape}")
    state = {"rois": rois, "class_ids": class_ids, "scores": scores,
             "masks": masks, "soft": soft}
    return state, dense


def from_state(state, dense):
    """Result dict from a state (dense or sparse masks as requested)."""
    masks, soft = state["masks"], state["soft"]
    out = {"rois": state["rois"].astype(np.int32),
           "class_ids": state["class_ids"].astype(np.int32),
           "scores": state["scores"].astype(np.float32),
           "masks": masks.to_dense() if dense else masks}
    if soft is not None:
        out["soft_masks"] = soft.to_soft() if dense else soft
    return out


def select_state(state, index):
    """The instances ``index`` (bool ``[N]`` or int indices) of a state."""
    index = np.asarray(index)
    return {"rois": state["rois"][index], "class_ids": state["class_ids"][index],
            "scores": state["scores"][index], "masks": state["masks"].select(index),
            "soft": None if state["soft"] is None else state["soft"].select(index)}


def with_masks(state, masks):
    """Replaces the binary masks (pixels changed): drop empties, new rois, no soft."""
    keep = masks.areas() > 0
    masks = masks.select(keep)
    return {"rois": masks.boxes(), "class_ids": state["class_ids"][keep],
            "scores": state["scores"][keep], "masks": masks, "soft": None}


def compact(result):
    """The same result with :class:`SparseMasks` masks (small to store)."""
    return from_state(*to_state(result)[:1], dense=False)


def expand(result):
    """The same result with dense bool ``[H, W, N]`` masks."""
    return from_state(*to_state(result)[:1], dense=True)


def score_order(scores):
    """Indices by decreasing score; equal scores keep their input order."""
    return np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")
