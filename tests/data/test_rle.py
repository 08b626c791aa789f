import numpy as np
import pytest

from mrcnn.data.masks.sparse import SparseMasks
from mrcnn.data.rle import (RLEDecodeError, check_runs, decode_rle_stack, parse_runs,
                             rle_decode, rle_encode, rle_encode_instances)

# Backend-independent: RLE encoding and decoding in NumPy; no Keras op.
pytestmark = pytest.mark.backend_independent


def _reference_encode(mask, order):
    """Brute force: walk the flattened mask pixel by pixel."""
    flat = np.asarray(mask, bool).ravel(order=order)
    runs, start = [], None
    for i, v in enumerate(flat.tolist() + [False]):
        if v and start is None:
            start = i
        elif not v and start is not None:
            runs += [start + 1, i - start]
            start = None
    return " ".join(map(str, runs))


def _reference_decode(values, shape, order):
    flat = np.zeros(shape[0] * shape[1], bool)
    for s, n in zip(values[0::2], values[1::2]):
        flat[s - 1:s - 1 + n] = True
    return flat.reshape(shape, order=order)


# 3x4 mask:      0 1 1 0
#                0 0 0 1
#                1 0 0 0
HAND = np.array([[0, 1, 1, 0], [0, 0, 0, 1], [1, 0, 0, 0]], bool)


def test_hand_example_row_major():
    # flat C: 0110 0001 1000 -> ones at 1-indexed 2, 3, 8, 9
    assert rle_encode(HAND, order="C") == "2 2 8 2"
    np.testing.assert_array_equal(rle_decode("2 2 8 2", (3, 4), order="C"), HAND)


def test_hand_example_column_major():
    # flat F (columns): 001 100 100 010 -> ones at 1-indexed 3, 4, 7, 11
    assert rle_encode(HAND, order="F") == "3 2 7 1 11 1"
    np.testing.assert_array_equal(rle_decode("3 2 7 1 11 1", (3, 4), order="F"), HAND)


@pytest.mark.parametrize("order", ["C", "F"])
def test_random_round_trip_matches_reference(order):
    rng = np.random.default_rng(0)
    for density in (0.05, 0.5, 0.95):
        mask = rng.random((23, 31)) < density
        rle = rle_encode(mask, order=order)
        assert rle == _reference_encode(mask, order)
        np.testing.assert_array_equal(rle_decode(rle, mask.shape, order=order), mask)


@pytest.mark.parametrize("order", ["C", "F"])
@pytest.mark.parametrize("n_runs", [1, 5, 64, 65, 300])
def test_decode_random_runs_matches_brute_force(order, n_runs):
    # Random, unsorted, overlapping runs on both sides of the few-runs /
    # many-runs switch inside rle_decode; compared with a slice-per-run
    # reference that knows nothing of that switch.
    rng = np.random.default_rng(n_runs)
    shape = (37, 53)
    size = shape[0] * shape[1]
    for _ in range(5):
        starts = rng.integers(1, size + 1, n_runs)
        lengths = rng.integers(1, 40, n_runs)
        lengths = np.minimum(lengths, size - starts + 1)
        values = np.stack([starts, lengths], axis=1).ravel().tolist()
        got = rle_decode(" ".join(map(str, values)), shape, order=order)
        assert got.dtype == bool and got.shape == shape
        np.testing.assert_array_equal(got, _reference_decode(values, shape, order))


@pytest.mark.parametrize("order", ["C", "F"])
def test_decode_random_masks_matches_brute_force(order):
    # Masks from sparse blobs (few runs) to dense noise (hundreds of runs).
    rng = np.random.default_rng(1)
    shape = (41, 29)
    for density in (0.001, 0.02, 0.3, 0.7, 0.999):
        mask = rng.random(shape) < density
        values = [int(v) for v in _reference_encode(mask, order).split()]
        np.testing.assert_array_equal(rle_decode(values, shape, order=order),
                                      _reference_decode(values, shape, order))
        np.testing.assert_array_equal(rle_decode(values, shape, order=order), mask)


@pytest.mark.parametrize("order", ["C", "F"])
def test_edge_masks(order):
    empty = np.zeros((5, 7), bool)
    assert rle_encode(empty, order) == ""
    np.testing.assert_array_equal(rle_decode("", (5, 7), order), empty)
    full = np.ones((5, 7), bool)
    assert rle_encode(full, order) == "1 35"
    np.testing.assert_array_equal(rle_decode("1 35", (5, 7), order), full)
    corners = np.zeros((5, 7), bool)
    corners[0, 0] = corners[-1, -1] = True
    assert rle_encode(corners, order) == "1 1 35 1"
    np.testing.assert_array_equal(rle_decode(rle_encode(corners, order), (5, 7), order),
                                  corners)


def test_decode_accepts_sequences_and_arrays():
    expected = _reference_decode([2, 2, 8, 2], (3, 4), "C")
    np.testing.assert_array_equal(rle_decode([2, 2, 8, 2], (3, 4)), expected)
    np.testing.assert_array_equal(rle_decode(np.array([2, 2, 8, 2]), (3, 4)), expected)
    np.testing.assert_array_equal(rle_decode(" 2  2\n8 2 ", (3, 4)), expected)
    np.testing.assert_array_equal(rle_decode([], (3, 4)), np.zeros((3, 4), bool))


def test_unsorted_and_overlapping_runs_give_union():
    values = [8, 3, 2, 4, 4, 2]  # unsorted; [4, 5] overlaps [2, 5]
    got = rle_decode(values, (3, 4))
    np.testing.assert_array_equal(got, _reference_decode(values, (3, 4), "C"))
    assert got.sum() == 7  # pixels 2..5 and 8..10


@pytest.mark.parametrize("rle, message", [
    ("1 2 3", "even number"),
    ("1 x", "non-integer token 'x'"),
    ("1.5 2", "non-integer token '1.5'"),
    ([1.5, 2], "must be integers"),
    ("0 2", r"run 0 \(start=0, length=2\) has a start below 1"),
    ("1 2 5 0", r"run 1 \(start=5, length=0\) has a length below 1"),
    ("1 2 5 -3", r"run 1 \(start=5, length=-3\)"),
    ("1 2 11 3", r"run 1 \(start=11, length=3\) runs past the end.*3x4 = 12 pixels"),
])
def test_malformed_input_errors(rle, message):
    with pytest.raises(ValueError, match=message):
        rle_decode(rle, (3, 4))


def test_run_ending_exactly_at_last_pixel_is_valid():
    assert rle_decode("11 2", (3, 4))[2, 2:].all()


def test_bad_order_and_shape():
    with pytest.raises(ValueError, match="order must be one of"):
        rle_encode(HAND, order="K")
    with pytest.raises(ValueError, match="order must be one of"):
        rle_decode("1 1", (3, 4), order="row")
    with pytest.raises(ValueError, match="2-D"):
        rle_encode(np.zeros((2, 2, 2)))
    with pytest.raises(ValueError, match="height, width"):
        rle_decode("1 1", (3, 4, 1))


# ---------------------------------------------------------------- many instances
def test_rle_encode_instances_matches_rle_encode():
    rng = np.random.default_rng(0)
    masks = rng.random((9, 11, 6)) > 0.6
    masks[..., 2] = False                                  # empty instance
    masks[:, :, 3] = True                                  # whole image: one run
    masks[0, 0, 4] = masks[-1, -1, 4] = True               # both corners
    expected = [rle_encode(masks[..., k], order="C") for k in range(6)]
    assert rle_encode_instances(masks) == expected
    assert rle_encode_instances(SparseMasks.from_dense(masks)) == expected
    assert expected[3] == f"1 {9 * 11}"
    assert rle_encode_instances(np.zeros((3, 3, 0), bool)) == []


def test_hand_written_rle_is_row_major():
    # "2 3 9 2" on a 2x8 image: flat pixels 1..3 (row 0, cols 1..3) and 8..9 (row 1, cols 0..1)
    masks = decode_rle_stack(["2 3 9 2"], (2, 8))
    expected = np.zeros((2, 8), bool)
    expected[0, 1:4] = True
    expected[1, 0:2] = True
    np.testing.assert_array_equal(masks[..., 0], expected)


@pytest.mark.parametrize("order", ["C", "F"])
def test_decode_rle_stack_equals_rle_decode(order):
    rng = np.random.default_rng(0)
    shape = (13, 17)
    size = shape[0] * shape[1]
    rles = []
    for _ in range(9):
        starts = rng.integers(1, size, 5)
        lengths = np.minimum(rng.integers(1, 30, 5), size - starts + 1)
        rles.append(" ".join(f"{s} {n}" for s, n in zip(starts, lengths)))  # unsorted, overlapping
    rles.append("")                                                         # empty instance
    rles.append([1, size])                                                  # whole image, as ints
    masks = decode_rle_stack(rles, shape, order=order)
    expected = np.stack([rle_decode(r, shape, order=order) for r in rles], axis=-1)
    assert masks.shape == (13, 17, 11)
    np.testing.assert_array_equal(masks, expected)
    assert decode_rle_stack([], shape).shape == (13, 17, 0)


def test_decode_error_says_which_instance():
    with pytest.raises(RLEDecodeError) as error:
        decode_rle_stack(["1 2", "3 4", "7 1 100 5"], (4, 5))
    assert error.value.index == 2 and "past the end" in str(error.value)


@pytest.mark.parametrize("bad", ["5 2 9", "5 2 40 10", "0 3", "5 x", "5 0", [1.5, 2]])
def test_stack_errors_carry_rle_decode_message(bad):
    good = "1 2"
    with pytest.raises(ValueError) as single:
        rle_decode(bad, (6, 8))
    with pytest.raises(RLEDecodeError) as stack:
        decode_rle_stack([good, bad, good], (6, 8))
    assert stack.value.index == 1
    assert stack.value.reason == str(single.value)
    assert str(stack.value) == f"annotation 1: {single.value}"


# ---------------------------------------------------------------- parsing
def test_parse_runs_gives_start_length_rows():
    expected = np.array([[2, 2], [8, 2]])
    for rle in ("2 2 8 2", b"2 2\t8 2\n", [2, 2, 8, 2], np.array([[2, 2], [8, 2]]),
                np.array([2.0, 2.0, 8.0, 2.0])):
        runs = parse_runs(rle)
        assert runs.dtype == np.int64
        np.testing.assert_array_equal(runs, expected)
    assert parse_runs("").shape == parse_runs([]).shape == (0, 2)
    # syntax only: starts, lengths and bounds are check_runs' business
    np.testing.assert_array_equal(parse_runs("0 -1"), [[0, -1]])


@pytest.mark.parametrize("rle, message", [
    ("1 2 3", r"odd number of values \(3\).*even number of values"),
    ("4 x 1 1", r"non-integer token 'x' at position 1"),
    ("99999999999999999999 1", r"token '99999999999999999999' at position 0 is out of the int64"),
    (np.array([1.0, np.nan]), "must be integers"),
])
def test_parse_runs_errors(rle, message):
    with pytest.raises(ValueError, match=message):
        parse_runs(rle)


def test_check_runs_lenient_accepts_unsorted_and_overlapping():
    check_runs(parse_runs("8 3 2 4 4 2"), (3, 4))
    check_runs(parse_runs(""), (3, 4))
    check_runs(parse_runs("11 2"), (3, 4))                      # ends at the last pixel


def test_check_runs_strict_accepts_sorted_touching_runs():
    check_runs(parse_runs("1 3 4 2 12 1"), (3, 4), strict=True)
    check_runs(parse_runs(""), (3, 4), strict=True)


@pytest.mark.parametrize("rle, message", [
    ("0 2", r"run 0 \(start 0, length 2\) needs start >= 1 and length >= 1"),
    ("1 1 3 0", r"run 1 \(start 3, length 0\) needs start >= 1 and length >= 1"),
    ("5 1 2 1", r"run 1 \(start 2\) begins before the previous run ends \(6\); runs must be "
                r"sorted and must not overlap"),
    ("1 3 2 1", r"run 1 \(start 2\) begins before the previous run ends \(4\)"),
    ("1 1 11 3", r"run 1 \(start 11, length 3\) runs past the end of the 3x4 image "
                 r"\(last pixel 12\)"),
])
def test_check_runs_strict_errors(rle, message):
    with pytest.raises(ValueError, match=message):
        check_runs(parse_runs(rle), (3, 4), strict=True)


def test_rle_encode_instances_equals_rle_encode_on_runs_that_wrap():
    from mrcnn.data.rle import rle_encode_instances

    rng = np.random.default_rng(1)
    masks = rng.random((9, 11, 4)) < 0.4
    masks[..., 2] = False
    masks[:, -1, 3] = masks[:, 0, 3] = True    # runs wrap from one row to the next
    assert rle_encode_instances(masks) == [rle_encode(masks[..., i]) for i in range(4)]


# ---------------------------------------------------------------- hostile values (issue 15)
INT64_MAX = 2 ** 63 - 1


@pytest.mark.parametrize("rle, message", [
    # start + length overflowed int64 and wrapped: the run passed the bounds check
    # and decoded to an empty mask
    (f"5 {INT64_MAX}", rf"run 0 \(start=5, length={INT64_MAX}\) runs past the end"),
    (f"{INT64_MAX} 5", rf"run 0 \(start={INT64_MAX}, length=5\) runs past the end"),
    ("1 100000000000000000000000", r"token '100000000000000000000000' at position 1 is out "
                                   r"of the int64 range"),
    ([1, 10 ** 23], r"value 100000000000000000000000 at position 1 is out of the int64 range"),
    (np.array([1.0, 1e23]), r"value 1e\+23 at position 1 is out of the int64 range"),
    (np.array([2.0 ** 63, 1.0]), r"value 9.22337e\+18 at position 0 is out of the int64 range"),
    (np.array([1, 2 ** 63], np.uint64), r"value 9223372036854775808 at position 1 is out of "
                                        r"the int64 range"),
    ("1_0 2", r"non-integer token '1_0' at position 0; expected .*digits 0-9"),
    ("\u0661 2", r"non-integer token '\u0661' at position 0"),        # ARABIC-INDIC ONE
    ("\uff11 2", r"non-integer token '\uff11' at position 0"),        # FULLWIDTH ONE
    ("+1 2", r"non-integer token '\+1' at position 0"),
    ("1\u00a02", r"non-integer token '1\\xa02' at position 0"),   # NO-BREAK SPACE
    ("1 2 --3 4", r"non-integer token '--3' at position 2"),
])
def test_hostile_values_raise_a_clear_value_error(rle, message):
    with pytest.raises(ValueError, match=message):
        rle_decode(rle, (3, 4))
    with pytest.raises(RLEDecodeError, match=message):
        decode_rle_stack(["1 1", rle], (3, 4))


def test_check_runs_with_huge_python_ints_is_a_value_error():
    with pytest.raises(ValueError, match=r"value 100000000000000000000000 at position 1 is out "
                                         r"of the int64 range"):
        check_runs([[1, 10 ** 23]], (3, 4))
    with pytest.raises(ValueError, match=rf"run 0 \(start=5, length={INT64_MAX}\) runs past"):
        check_runs([[5, INT64_MAX]], (3, 4))
    with pytest.raises(ValueError, match=rf"run 0 \(start 5, length {INT64_MAX}\) runs past"):
        check_runs([[5, INT64_MAX]], (3, 4), strict=True)


def test_shape_must_be_two_non_negative_integers():
    with pytest.raises(ValueError, match=r"shape must be \(height, width\) integers, got "
                                         r"\(3\.5, 4\)"):
        rle_decode("1 2", (3.5, 4))
    with pytest.raises(ValueError, match=r"shape must be \(height, width\) integers"):
        decode_rle_stack(["1 2"], ("3", 4))
    np.testing.assert_array_equal(rle_decode("1 2", (np.int64(3), 4.0)),
                                  rle_decode("1 2", (3, 4)))   # integral values are fine
