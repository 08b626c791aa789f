"""Run-length encoding of binary masks (Kaggle competition format).

A run-length string lists ``start length`` pairs over the flattened mask,
with 1-indexed starts: ``"3 2 8 1"`` sets flat pixels 3, 4 and 8 (1-indexed).
The flattening order differs between competitions:

- ``order="C"``: row-major (left to right, then top to bottom), as in the
  Sartorius cell-instance-segmentation ``train.csv``.
- ``order="F"``: column-major (top to bottom, then left to right), as in the
  2018 Data Science Bowl nucleus data.
"""

import numpy as np

_ORDERS = ("C", "F")
# Above this many runs, rle_decode fills the runs with one vectorised pass
# instead of one slice assignment per run.
_LOOP_MAX_RUNS = 64


def _check_order(order):
    if order not in _ORDERS:
        raise ValueError(f"order must be one of {_ORDERS} (C = row-major, "
                         f"F = column-major), got {order!r}")


def rle_encode(mask, order="C"):
    """Encode a 2-D binary mask as a run-length string.

    Args:
        mask: [H, W] array; nonzero (or True) pixels belong to the object.
        order: "C" to flatten row by row, "F" to flatten column by column.

    Returns:
        str: "start length start length ..." with 1-indexed starts, runs in
        increasing order; "" for an empty mask.
    """
    _check_order(order)
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(f"rle_encode expects a 2-D [H, W] mask, got shape {mask.shape}")
    flat = mask.astype(bool).ravel(order=order)
    # Pad with a zero at both ends so that every run has a rising and a
    # falling edge; edge i of `diff` lies between flat[i - 1] and flat[i].
    padded = np.concatenate([[False], flat, [False]]).astype(np.int8)
    edges = np.diff(padded)
    starts = np.flatnonzero(edges == 1)    # 0-indexed first pixel of each run
    ends = np.flatnonzero(edges == -1)     # 0-indexed pixel after each run
    if starts.size == 0:
        return ""
    pairs = np.stack([starts + 1, ends - starts], axis=1).ravel()
    return " ".join(map(str, pairs.tolist()))


def _parse_runs(rle):
    """Turn a run-length string or sequence into an int64 [2 * R] array."""
    if isinstance(rle, (bytes, bytearray)):
        rle = rle.decode()
    if isinstance(rle, str):
        tokens = rle.split()
        if not tokens:
            return np.zeros([0], np.int64)
        try:
            return np.array([int(t) for t in tokens], dtype=np.int64)
        except ValueError:
            bad = next(t for t in tokens if not _is_int_token(t))
            raise ValueError(f"run-length string contains a non-integer token "
                             f"{bad!r} (position {tokens.index(bad)}); expected "
                             f"whitespace-separated integers 'start length ...'") from None
    values = np.asarray(rle)
    if values.size == 0:
        return np.zeros([0], np.int64)
    if values.ndim != 1:
        values = values.ravel()
    if values.dtype.kind in "iu":
        return values.astype(np.int64)
    if values.dtype.kind == "f" and np.all(np.isfinite(values)) \
            and np.all(values == np.round(values)):
        return values.astype(np.int64)
    raise ValueError(f"run-length values must be integers, got dtype {values.dtype} "
                     f"with values {values[:8].tolist()}...")


def _is_int_token(token):
    try:
        int(token)
    except ValueError:
        return False
    return True


def rle_decode(rle, shape, order="C"):
    """Decode a run-length string into a 2-D boolean mask.

    Runs may be unsorted or overlap; the result is the union of all runs
    (as the usual Kaggle decoders do). Every run must lie inside the image.
    Only the runs are written, so decoding a small object costs microseconds
    whatever the image size (to decode all instances of an image at once,
    see `mrcnn.datasets.sartorius.decode_rle_stack`).

    Args:
        rle: "start length ..." string (whitespace separated, 1-indexed starts)
            or a sequence of ints [s1, l1, s2, l2, ...]. "" gives an empty mask.
        shape: (H, W) of the image.
        order: "C" (row-major) or "F" (column-major), as used when encoding.

    Returns:
        bool [H, W] mask.

    Raises:
        ValueError: for an odd number of values, non-integer values, a start
            below 1, a length below 1, or a run that goes past the last pixel.
    """
    _check_order(order)
    if len(shape) != 2:
        raise ValueError(f"shape must be (height, width), got {tuple(shape)!r}")
    height, width = (int(v) for v in shape)
    if height < 0 or width < 0:
        raise ValueError(f"shape must be non-negative, got {tuple(shape)!r}")
    size = height * width
    values = _parse_runs(rle)
    if values.size % 2:
        raise ValueError(f"run-length encoding must have an even number of values "
                         f"(start length pairs), got {values.size}")
    starts, lengths = values[0::2], values[1::2]

    def fail(what, bad):
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(f"run {i} (start={int(starts[i])}, length={int(lengths[i])}) "
                         f"{what}; image is {height}x{width} = {size} pixels, "
                         f"starts are 1-indexed")

    if np.any(starts < 1):
        fail("has a start below 1", starts < 1)
    if np.any(lengths < 1):
        fail("has a length below 1", lengths < 1)
    ends = starts - 1 + lengths            # 0-indexed, exclusive
    if np.any(ends > size):
        fail("runs past the end of the image", ends > size)

    flat = np.zeros(size, bool)
    if starts.size <= _LOOP_MAX_RUNS:
        # Few runs (a typical cell or nucleus has tens): write each run as a
        # slice; the cost grows with the number of runs and their area, not
        # with the image size.
        for start, end in zip((starts - 1).tolist(), ends.tolist()):
            flat[start:end] = True
    else:
        # Many runs: +1 where a run begins, -1 after it ends; the running sum
        # counts the runs covering each pixel. Only the span from the first
        # start to the last end is scanned.
        lo, hi = int(starts.min()) - 1, int(ends.max())
        edges = (np.bincount(starts - 1 - lo, minlength=hi - lo + 1)
                 - np.bincount(ends - lo, minlength=hi - lo + 1))
        flat[lo:hi] = np.cumsum(edges[:-1]) > 0
    return flat.reshape((height, width), order=order)
