"""Run-length encoding of binary masks (Kaggle competition format).

A run-length string lists ``start length`` pairs over the flattened mask,
with 1-indexed starts: ``"3 2 8 1"`` sets flat pixels 3, 4 and 8 (1-indexed).
The flattening order differs between competitions:

- ``order="C"``: row-major (left to right, then top to bottom), as in the
  Sartorius cell-instance-segmentation ``train.csv`` and its submissions.
- ``order="F"``: column-major (top to bottom, then left to right), as in the
  2018 Data Science Bowl nucleus data.

Everything that reads or writes run-length strings lives here:

- parsing: :func:`parse_runs` (text or integers -> ``[R, 2]`` runs) and
  :func:`check_runs` (runs inside the image; with ``strict=True`` also the
  submission rules: runs sorted and disjoint);
- one mask: :func:`rle_encode`, :func:`rle_decode`;
- many instances: :func:`rle_encode_instances` (dense masks or
  `SparseMasks`), :func:`decode_rle_stack` (all instances of an image);
- COCO's compressed RLE strings: :func:`coco_compressed_counts` (the run
  lengths, checked; pycocotools decodes the masks).

::

    rle = rle_encode(mask)                      # bool [H, W] -> "start length ..."
    mask = rle_decode(rle, (H, W))              # -> bool [H, W]
    masks = decode_rle_stack(rles, (H, W))      # N strings -> bool [H, W, N]
    rles = rle_encode_instances(masks)          # bool [H, W, N] -> N strings
"""

import re

import numpy as np

from mrcnn.data.masks.sparse import SparseMasks

__all__ = ["RLEDecodeError", "check_runs", "coco_compressed_counts", "decode_rle_stack",
           "parse_runs", "rle_decode", "rle_encode", "rle_encode_instances"]

_ORDERS = ("C", "F")
# Above this many runs, rle_decode fills the runs with one vectorised pass
# instead of one slice assignment per run.
_LOOP_MAX_RUNS = 64


def _check_order(order):
    if order not in _ORDERS:
        raise ValueError(f"order must be one of {_ORDERS} (C = row-major, "
                         f"F = column-major), got {order!r}")


def _image_shape(shape):
    """(height, width) as ints, checked."""
    if len(shape) != 2:
        raise ValueError(f"shape must be (height, width), got {tuple(shape)!r}")
    try:
        values = [_as_int(v) for v in shape]
    except ValueError:
        raise ValueError(f"shape must be (height, width) integers, got {tuple(shape)!r}") from None
    height, width = values
    if height < 0 or width < 0:
        raise ValueError(f"shape must be non-negative, got {tuple(shape)!r}")
    return height, width


def _as_int(value):
    """An int from an int, a NumPy integer or an integral float; else ValueError."""
    if isinstance(value, (bool, np.bool_)):
        raise ValueError(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)) and np.isfinite(value) and value == int(value):
        return int(value)
    raise ValueError(value)


# ---------------------------------------------------------------- parsing
def parse_runs(rle):
    """The ``(start, length)`` pairs of a run-length encoding.

    Only the syntax is checked here (integers, an even count); see
    :func:`check_runs` for starts, lengths and the image bounds.

    Args:
        rle: ``"start length ..."`` string (whitespace separated; bytes are
            decoded) or a sequence / array of integers ``[s1, l1, s2, l2, ...]``.
            An empty string or sequence has no runs.

    Returns:
        int64 ``[R, 2]`` array of ``(start, length)`` rows, starts 1-indexed,
        in the order given.

    Raises:
        ValueError: a non-integer token or value, or an odd number of values;
            the message names the bad token and what was expected.
    """
    if isinstance(rle, (bytes, bytearray)):
        try:
            rle = rle.decode("ascii")
        except UnicodeDecodeError as error:
            raise ValueError(f"run-length bytes must be ASCII, got byte "
                             f"{rle[error.start]:#04x} at position {error.start}") from None
    if isinstance(rle, str):
        values = None
        if _PLAIN_TEXT.fullmatch(rle):
            tokens = rle.split()
            try:
                values = np.array(tokens, dtype=np.int64)
            except (ValueError, OverflowError):
                pass
        if values is None:
            raise ValueError(_bad_token_message(rle))
    else:
        values = _integer_values(rle)
    if values.size % 2:
        raise ValueError(f"odd number of values ({values.size}); a run-length encoding "
                         f"must have an even number of values (start length pairs)")
    return values.reshape(-1, 2)


# Only ASCII digits, '-' and ASCII whitespace: int() (and NumPy) would also
# take '1_0', '+1' and non-ASCII digits such as '\u0661'.
_PLAIN_TEXT = re.compile(r"[0-9 \t\n\r\f\v-]*")
_TOKEN = re.compile(r"-?[0-9]+")
_INT64 = np.iinfo(np.int64)


def _integer_values(values):
    """int64 [K] from an integer (or integral float) sequence or array."""
    values = np.asarray(values)
    if values.size == 0:
        return np.zeros([0], np.int64)
    values = values.ravel()
    if values.dtype.kind == "i":
        return values.astype(np.int64)
    if values.dtype.kind == "u" or (values.dtype.kind == "f" and np.all(np.isfinite(values))
                                    and np.all(values == np.round(values))):
        if values.dtype.kind == "u":
            out_of_range = np.flatnonzero(values > np.uint64(_INT64.max))
        else:                               # 2.0 ** 63 is the first float past int64
            out_of_range = np.flatnonzero((values >= 2.0 ** 63) | (values < -2.0 ** 63))
        if out_of_range.size:
            raise ValueError(_out_of_range(values[out_of_range[0]], out_of_range[0]))
        return values.astype(np.int64)
    if values.dtype.kind == "O":            # Python ints beyond int64 (or other objects)
        for position, value in enumerate(values.tolist()):
            if isinstance(value, (int, np.integer)) and not isinstance(value, bool) \
                    and not _INT64.min <= value <= _INT64.max:
                raise ValueError(_out_of_range(value, position))
    raise ValueError(f"run-length values must be integers, got dtype {values.dtype} "
                     f"with values {values[:8].tolist()}...")


def _out_of_range(value, position):
    if isinstance(value, (float, np.floating)):
        value = f"{float(value):g}"
    return (f"value {value} at position {position} is out of the int64 range; run-length "
            f"values are pixel positions and lengths")


def _bad_token_message(text):
    tokens = re.split(r"[ \t\n\r\f\v]+", text.strip(" \t\n\r\f\v"))
    for position, token in enumerate(tokens):
        if not _TOKEN.fullmatch(token):
            return (f"non-integer token {token!r} at position {position}; expected "
                    f"whitespace-separated integers 'start length ...' (digits 0-9)")
        if not _INT64.min <= int(token) <= _INT64.max:
            return f"token {token!r} at position {position} is out of the int64 range"
    return f"cannot parse {text[:60]!r} as integers 'start length ...'"


def check_runs(runs, shape, strict=False):
    """Raises ValueError unless every run lies inside an image of `shape`.

    Args:
        runs: int ``[R, 2]`` ``(start, length)`` rows, 1-indexed starts, as
            returned by :func:`parse_runs`.
        shape: ``(H, W)`` of the image; the last pixel is ``H * W``.
        strict: also require the runs to be sorted and disjoint, as the
            competition's submission format does (decoders accept unsorted
            and overlapping runs and take their union), and word the errors
            in the format's terms (``needs start >= 1 and length >= 1``).

    Raises:
        ValueError: the first bad run (its index, start and length): a start
            below 1, a length below 1, a run past the last pixel, or (strict)
            a run beginning before the previous one ends.
    """
    height, width = _image_shape(shape)
    size = height * width
    runs = _integer_values(runs)
    if runs.size % 2:
        raise ValueError(f"runs must be (start, length) pairs, got {runs.size} values")
    runs = runs.reshape(-1, 2)
    if runs.size and (runs.max() > 2 ** 62 or runs.min() < -2 ** 62):
        runs = runs.astype(object)         # exact Python ints: start + length cannot wrap
    starts, lengths = runs[:, 0], runs[:, 1]
    stops = starts + lengths               # 1-indexed, exclusive
    if strict:
        _first_bad(runs, (starts < 1) | (lengths < 1), "needs start >= 1 and length >= 1",
                   strict)
        overlap = np.flatnonzero((starts[1:] < stops[:-1]).astype(bool))
        if overlap.size:
            k = int(overlap[0]) + 1
            raise ValueError(f"run {k} (start {starts[k]}) begins before the previous run "
                             f"ends ({stops[k - 1]}); runs must be sorted and must not "
                             f"overlap")
        _first_bad(runs, stops - 1 > size, f"runs past the end of the {height}x{width} "
                                           f"image (last pixel {size})", strict)
        return
    where = f"image is {height}x{width} = {size} pixels, starts are 1-indexed"
    _first_bad(runs, starts < 1, f"has a start below 1; {where}", strict)
    _first_bad(runs, lengths < 1, f"has a length below 1; {where}", strict)
    _first_bad(runs, stops - 1 > size, f"runs past the end of the image; {where}", strict)


def _first_bad(runs, bad, problem, strict):
    """Raises ValueError naming the first run flagged in bool [R] `bad`."""
    bad = np.asarray(bad, bool)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        start, length = (int(v) for v in runs[i])
        run = f"start {start}, length {length}" if strict else \
            f"start={start}, length={length}"
        raise ValueError(f"run {i} ({run}) {problem}")


# ---------------------------------------------------------------- encoding
def _runs_to_strings(owner, pixel, count):
    """Run-length strings of `count` masks given as sorted (owner, pixel) pairs.

    Args:
        owner: int [P] mask index of each foreground pixel.
        pixel: int [P] 0-indexed flat pixel index, sorted by (owner, pixel),
            no duplicates.
        count: number of masks N.

    Returns:
        list of N strings "start length ..." ("" for an empty mask).
    """
    # A run starts where the owner changes or the pixel does not follow the
    # previous one.
    new_run = np.r_[True, (owner[1:] != owner[:-1]) | (pixel[1:] != pixel[:-1] + 1)] \
        if pixel.size else np.zeros(0, bool)
    starts = np.flatnonzero(new_run)
    lengths = np.diff(np.r_[starts, pixel.size])
    pairs = np.stack([pixel[starts] + 1, lengths], axis=1)
    bounds = np.searchsorted(owner[starts], np.arange(count + 1))
    return [" ".join(map(str, pairs[a:b].ravel().tolist()))
            for a, b in zip(bounds[:-1], bounds[1:])]


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
    pixel = np.flatnonzero(mask.astype(bool).ravel(order=order))
    return _runs_to_strings(np.zeros(pixel.size, np.int64), pixel, 1)[0]


def rle_encode_instances(masks):
    """Row-major run-length strings of every instance at once.

    Gives the same strings as ``rle_encode(masks[..., i], order="C")`` for
    each ``i``, without scanning the image once per instance.

    Args:
        masks: bool ``[H, W, N]`` array or :class:`~mrcnn.data.masks.sparse.SparseMasks`.

    Returns:
        list of ``N`` strings ``"start length ..."`` ("" for an empty mask).
    """
    if not isinstance(masks, SparseMasks):
        masks = SparseMasks.from_dense(masks)
    return _runs_to_strings(masks.instance, masks.pixel, masks.count)


# ---------------------------------------------------------------- decoding
def rle_decode(rle, shape, order="C"):
    """Decode a run-length string into a 2-D boolean mask.

    Runs may be unsorted or overlap; the result is the union of all runs
    (as the usual Kaggle decoders do). Every run must lie inside the image.
    Only the runs are written, so decoding a small object costs microseconds
    whatever the image size (to decode all instances of an image at once,
    see :func:`decode_rle_stack`).

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
    height, width = _image_shape(shape)
    runs = parse_runs(rle)
    check_runs(runs, (height, width))
    starts, lengths = runs[:, 0], runs[:, 1]
    ends = starts - 1 + lengths            # 0-indexed, exclusive
    flat = np.zeros(height * width, bool)
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


class RLEDecodeError(ValueError):
    """A run-length string of a stack could not be decoded.

    Attributes:
        index: int, position of the bad string in the stack.
        reason: the problem, as :func:`rle_decode` words it.
    """

    def __init__(self, index, message):
        super().__init__(f"annotation {index}: {message}")
        self.index = index
        self.reason = message


def decode_rle_stack(rles, shape, order="C"):
    """Decode the run-length strings of one image into a stack of masks.

    Same semantics as :func:`rle_decode` applied to each string (runs may
    overlap or be unsorted; every run must lie inside the image), but all
    runs of all instances are written with one fancy-index assignment:
    besides allocating the (lazily zeroed) output, the cost grows with the
    masks' total area, not with instances x image size (700 instances on
    520x704: ~50-90 ms, against ~4 s for a loop of `rle_decode` calls).

    Args:
        rles: sequence of N run-length strings ("start length ...", 1-indexed
            starts) or int sequences.
        shape: (H, W) of the image.
        order: "C" (row-major, Sartorius) or "F" (column-major, DSB 2018).

    Returns:
        bool [H, W, N]; channel i is the mask of rles[i].

    Raises:
        RLEDecodeError (a ValueError): a string with non-integer values, an
            odd number of values, a start below 1, a length below 1 or a run
            past the last pixel; `index` says which string, the message is
            `rle_decode`'s.
    """
    _check_order(order)
    height, width = _image_shape(shape)
    n = len(rles)
    masks = np.zeros((height, width, n), bool)
    if n == 0:
        return masks
    parsed = []
    for i, rle in enumerate(rles):
        try:
            parsed.append(parse_runs(rle))
        except ValueError as error:
            raise RLEDecodeError(i, str(error)) from error
    runs_per_rle = np.array([len(r) for r in parsed])
    runs = np.concatenate(parsed)
    starts = runs[:, 0] - 1                 # 0-indexed first pixel of each run
    lengths = runs[:, 1]
    # lengths > size - starts, not starts + lengths > size: the sum can wrap
    bad = (starts < 0) | (lengths < 1) | (lengths > height * width - starts)
    if bad.any():                           # let check_runs word the problem
        i = int(np.searchsorted(np.cumsum(runs_per_rle), np.flatnonzero(bad)[0],
                                side="right"))
        try:
            check_runs(parsed[i], (height, width))
        except ValueError as error:
            raise RLEDecodeError(i, str(error)) from error
    # Expand runs to pixels: run r covers starts[r] + 0 .. lengths[r] - 1.
    run_of_pixel = np.repeat(np.arange(starts.size), lengths)
    first_pixel_of_run = np.cumsum(lengths) - lengths
    flat = starts[run_of_pixel] + (np.arange(run_of_pixel.size) - first_pixel_of_run[run_of_pixel])
    instance = np.repeat(np.arange(n), runs_per_rle)[run_of_pixel]
    if order == "C":
        rows, cols = np.divmod(flat, width)
    else:
        cols, rows = np.divmod(flat, height)
    masks[rows, cols, instance] = True
    return masks


# ---------------------------------------------------------------- COCO strings
def coco_compressed_counts(counts):
    """The run lengths of a COCO compressed RLE string (pycocotools' format), checked.

    COCO's RLE is column-major, starts with a run of zeros and alternates;
    this only reads the lengths (decode masks with pycocotools). The format:
    each count is written in 5-bit groups, lowest first, as characters
    ``chr(48 + group)``, bit 0x20 marking that another group follows and
    bit 0x10 of the last group the sign; from the fourth count on, the value
    is the difference to the count two places before. pycocotools itself
    does not check a string: a bad one decodes to uninitialised memory or
    reads past its end.

    Args:
        counts: str or bytes.

    Returns:
        list of int run lengths.

    Raises:
        ValueError: a character outside '0'..'o', a string that ends inside
            a count, a count above 2**40 or a negative run length.
    """
    if isinstance(counts, (bytes, bytearray)):
        counts = counts.decode("latin-1")
    bad = _COCO_ALPHABET.search(counts)
    if bad:
        raise ValueError(f"compressed RLE counts have the character {bad.group()!r} at "
                         f"position {bad.start()}; expected '0'..'o'")
    if counts and (ord(counts[-1]) - 48) & 0x20:
        raise ValueError("compressed RLE counts end in the middle of a count")
    runs = []
    value = groups = 0
    for char in counts:                 # a Python loop beats NumPy on strings this short
        code = ord(char) - 48
        value |= (code & 0x1F) << (5 * groups)
        groups += 1
        if code & 0x20:
            if groups == 8:
                raise ValueError("compressed RLE counts hold a count above 2**40")
            continue
        if code & 0x10:
            value -= 1 << (5 * groups)
        if len(runs) > 2:
            value += runs[-2]
        if value < 0:
            raise ValueError(f"compressed RLE counts give the negative run length {value} "
                             f"(count {len(runs)})")
        runs.append(value)
        value = groups = 0
    return runs


_COCO_ALPHABET = re.compile(r"[^0-o]")
