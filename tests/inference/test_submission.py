"""Tests for mrcnn/inference/submission.py: RLE rows, atomic CSV writing, validation."""

import os

import numpy as np
import pytest

from mrcnn.data import rle as rle_module
from mrcnn.data.rle import rle_decode
from mrcnn.inference import PostprocessConfig, SparseMasks, postprocess
from mrcnn.inference import (
    read_submission,
    rle_encode_instances,
    submission_rows,
    validate_submission,
    write_submission,
)

# Backend-independent: submission rows, RLE and CSV writing; no Keras op.
pytestmark = pytest.mark.backend_independent


def _write(path, lines):
    path.write_text("\n".join(lines) + "\n")
    return path


def _decode_all(path, shapes):
    """Independent check: decode every row with rle_decode and count pixels."""
    counts = {i: np.zeros(s, np.int64) for i, s in shapes.items()}
    for _, image_id, rle in read_submission(path):
        counts[image_id] += rle_decode(rle, shapes[image_id])
    return counts


def test_rle_encode_instances_is_exported_from_its_home():
    assert rle_encode_instances is rle_module.rle_encode_instances


def test_submission_rows_one_per_instance_and_one_for_empty_image():
    masks = np.zeros((4, 5, 3), bool)
    masks[0, 1:3, 0] = True                                # pixels 2, 3
    masks[3, 4, 2] = True                                  # pixel 20
    assert submission_rows("img", masks) == [("img", "2 2"), ("img", "20 1")]
    assert submission_rows(7, np.zeros((4, 5, 0), bool)) == [("7", "")]
    assert submission_rows("x", np.zeros((4, 5, 2), bool)) == [("x", "")]


def test_write_and_read_round_trip_is_atomic(tmp_path):
    path = tmp_path / "submission.csv"
    rows = [("a", "1 2 5 1"), ("b", "")]
    assert write_submission(path, rows) == 2
    assert path.read_text() == "id,predicted\na,1 2 5 1\nb,\n"
    assert [r[1:] for r in read_submission(path)] == rows
    assert os.listdir(tmp_path) == ["submission.csv"]      # no temporary left
    with pytest.raises(ValueError, match=r"rows\[1\] must be \(id, rle\)"):
        write_submission(path, [("a", "1 1"), ("b",)])
    # The failed write left the previous file intact and no temporary file.
    assert path.read_text() == "id,predicted\na,1 2 5 1\nb,\n"
    assert os.listdir(tmp_path) == ["submission.csv"]
    with pytest.raises(FileNotFoundError, match="directory of the submission"):
        write_submission(tmp_path / "missing" / "s.csv", rows)


def test_postprocessed_detections_make_a_valid_submission(tmp_path):
    rng = np.random.default_rng(1)
    shapes = {"img1": (30, 40), "img2": (30, 40), "img3": (20, 25)}
    rows = []
    for image_id, (h, w) in shapes.items():
        n = 0 if image_id == "img3" else 15
        yy, xx = np.mgrid[:h, :w]
        masks = np.stack([(yy - rng.integers(h)) ** 2 + (xx - rng.integers(w)) ** 2
                          <= rng.integers(3, 9) ** 2 for _ in range(n)], axis=-1) \
            if n else np.zeros((h, w, 0), bool)
        result = {"rois": np.zeros((n, 4), np.int32), "class_ids": np.ones(n, np.int32),
                  "scores": rng.random(n).astype(np.float32), "masks": masks}
        assert n == 0 or masks.sum(axis=2).max() > 1       # overlapping input
        clean = postprocess(result, PostprocessConfig(min_area=5))
        rows += submission_rows(image_id, clean["masks"])
    path = tmp_path / "submission.csv"
    write_submission(path, rows)
    summary = validate_submission(path, shapes)
    assert summary == {"rows": len(rows), "images": 3,
                       "instances": len(rows) - 1}
    counts = _decode_all(path, shapes)
    assert max(c.max() for c in counts.values()) == 1
    assert counts["img3"].sum() == 0


@pytest.mark.parametrize("lines, message", [
    (["id,pred", "a,1 1"], r"line 1: header must be 'id,predicted'"),
    (["id,predicted", "a,1 1,3"], r"line 2: expected 2 fields"),
    (["id,predicted", "a,1 x"], r"line 2 \(id 'a'\): malformed RLE: non-integer token 'x'"),
    (["id,predicted", "a,1 2 3"], r"line 2 \(id 'a'\): malformed RLE: odd number"),
    (["id,predicted", "a,0 2"], r"run 0 \(start 0, length 2\) needs start >= 1"),
    (["id,predicted", "a,3 0"], r"run 0 \(start 3, length 0\) needs .*length >= 1"),
    (["id,predicted", "a,5 1 2 1"], r"run 1 \(start 2\) begins before the previous"),
    (["id,predicted", "a,1 3 2 1"], r"run 1 \(start 2\) begins before the previous"),
    (["id,predicted", "a,11 3"], r"runs past the end of the 3x4 image"),
    (["id,predicted", "a,1 3", "b,", "a,6 2", "a,3 2"],
     r"lines 2 and 5 \(id 'a'\) share pixel 3 \(row 0, column 2\)"),
    (["id,predicted", "a,1 1"], r"1 expected image ids have no row, e\.g\. \['b'\]"),
    (["id,predicted", "a,1 1", "b,", "c,1 1"], r"line 4 \(id 'c'\): id is not one"),
    (["id,predicted", "a,1 1", "a,", "b,"], r"line 3 \(id 'a'\): empty prediction"),
])
def test_validate_submission_rejects_bad_files(tmp_path, lines, message):
    path = _write(tmp_path / "s.csv", lines)
    with pytest.raises(ValueError, match=message):
        validate_submission(path, {"a": (3, 4), "b": (3, 4)})


def test_validate_submission_accepts_touching_instances_and_checks_ids(tmp_path):
    # Runs that touch (pixel 3 ends one instance, 4 starts the next) are fine.
    path = _write(tmp_path / "s.csv", ["id,predicted", "a,1 3", "a,4 2", "b,12 1"])
    assert validate_submission(path, {"a": (3, 4), "b": (3, 4)}) == \
        {"rows": 3, "images": 2, "instances": 3}
    # expected_ids narrows the images that must (and may) appear.
    with pytest.raises(ValueError, match=r"id 'b'\): id is not one"):
        validate_submission(path, {"a": (3, 4), "b": (3, 4)}, expected_ids=["a"])
    with pytest.raises(ValueError, match=r"without a shape in image_shapes: \['z'\]"):
        validate_submission(path, {"a": (3, 4)}, expected_ids=["a", "z"])
    with pytest.raises(FileNotFoundError, match="submission file not found"):
        validate_submission(tmp_path / "nope.csv", {"a": (3, 4)})


def test_write_errors_name_the_submission_not_a_temp_file(tmp_path):
    target = tmp_path / "out.csv"
    target.mkdir()                                   # a folder where the file should go
    with pytest.raises(OSError) as error:
        write_submission(str(target), [("a", "1 2")])
    assert repr(str(target)) in str(error.value) and ".submission-" not in str(error.value)
    assert [p.name for p in tmp_path.iterdir()] == ["out.csv"]      # no temp file left


# ------------------------------------------------------------- DSB 2018 (order="F")
def test_dsb_rows_are_column_major_hand_case():
    masks = np.zeros((3, 4, 2), bool)
    masks[:, 1, 0] = True          # column 1: column-major pixels 3, 4, 5 -> "4 3"
    masks[2, 2:4, 1] = True        # row 2, columns 2-3: pixels 8 and 11 -> "9 1 12 1"
    assert submission_rows("n", masks, order="F") == [("n", "4 3"), ("n", "9 1 12 1")]
    # The same masks row-major (Sartorius) for comparison.
    assert submission_rows("n", masks) == [("n", "2 1 6 1 10 1"), ("n", "11 2")]
    assert submission_rows("n", np.zeros((3, 4, 0), bool), order="F") == [("n", "")]


@pytest.mark.parametrize("sparse", [False, True])
def test_dsb_rows_equal_rle_encode_order_f(sparse):
    rng = np.random.default_rng(11)
    h, w = 17, 23
    yy, xx = np.mgrid[:h, :w]
    masks = np.stack([(yy - rng.integers(h)) ** 2 + (xx - rng.integers(w)) ** 2
                      <= rng.integers(1, 6) ** 2 for _ in range(9)], axis=-1)
    masks[..., 4] = False                                  # an empty instance is skipped
    masks[:, 5:7, 6] = True                                # runs across columns
    given = SparseMasks.from_dense(masks) if sparse else masks
    want = [rle_module.rle_encode(masks[..., k], order="F") for k in range(9)]
    assert submission_rows("img", given, order="F") == [("img", r) for r in want if r]
    assert any(r != rle_module.rle_encode(masks[..., k]) for k, r in enumerate(want) if r)


def test_dsb_submission_round_trip_and_validation(tmp_path):
    rng = np.random.default_rng(2)
    shapes = {"n1": (30, 40), "n2": (25, 35), "n3": (20, 20)}
    rows, kept = [], {}
    for image_id, (h, w) in shapes.items():
        n = 0 if image_id == "n3" else 12
        yy, xx = np.mgrid[:h, :w]
        masks = np.stack([(yy - rng.integers(h)) ** 2 + (xx - rng.integers(w)) ** 2
                          <= rng.integers(3, 8) ** 2 for _ in range(n)], axis=-1) \
            if n else np.zeros((h, w, 0), bool)
        result = {"rois": np.zeros((n, 4), np.int32), "class_ids": np.ones(n, np.int32),
                  "scores": rng.random(n).astype(np.float32), "masks": masks}
        clean = postprocess(result, PostprocessConfig(min_area=5))
        kept[image_id] = clean["masks"]
        rows += submission_rows(image_id, clean["masks"], order="F")
    path = tmp_path / "dsb.csv"
    assert write_submission(path, rows, order="F") == len(rows)
    assert path.read_text().splitlines()[0] == "ImageId,EncodedPixels"
    assert validate_submission(path, shapes, order="F") == {
        "rows": len(rows), "images": 3, "instances": len(rows) - 1}
    # Every row decodes column-major to the post-processed mask it came from.
    for image_id, masks in kept.items():
        decoded = [rle_decode(rle, shapes[image_id], order="F")
                   for _, i, rle in read_submission(path, order="F") if i == image_id and rle]
        want = [masks[..., k] for k in range(masks.shape[-1]) if masks[..., k].any()]
        assert len(decoded) == len(want)
        for got, expected in zip(decoded, want):
            np.testing.assert_array_equal(got, expected)
    # The Sartorius reader refuses the DSB header and says which order it is.
    with pytest.raises(ValueError, match=r"header must be 'id,predicted' \(order='C'\), got "
                                         r"\['ImageId', 'EncodedPixels'\] \(that is the header "
                                         r"of order='F': pass order='F'\)"):
        read_submission(path)
    sartorius = tmp_path / "s.csv"
    write_submission(sartorius, [("a", "1 1")])
    with pytest.raises(ValueError, match=r"header must be 'ImageId,EncodedPixels' \(order='F'\)"
                                         r".*pass order='C'"):
        validate_submission(sartorius, {"a": (3, 4)}, order="F")


def test_dsb_overlap_names_row_and_column_of_the_column_major_pixel(tmp_path):
    # 3x4 image; column-major pixel 5 (1-indexed) is row 1, column 1.
    path = _write(tmp_path / "d.csv", ["ImageId,EncodedPixels", "a,4 2", "a,5 3"])
    with pytest.raises(ValueError, match=r"lines 2 and 3 \(id 'a'\) share pixel 5 "
                                         r"\(row 1, column 1\)"):
        validate_submission(path, {"a": (3, 4)}, order="F")
    assert rle_decode("5 1", (3, 4), order="F")[1, 1]
    with pytest.raises(ValueError, match="runs past the end of the 3x4 image"):
        validate_submission(_write(tmp_path / "e.csv", ["ImageId,EncodedPixels", "a,11 3"]),
                            {"a": (3, 4)}, order="F")


@pytest.mark.parametrize("call", [
    lambda p: submission_rows("a", np.zeros((2, 2, 1), bool), order="f"),
    lambda p: write_submission(p, [("a", "")], order="K"),
    lambda p: read_submission(p, order=None),
    lambda p: validate_submission(p, {"a": (2, 2)}, order="column"),
])
def test_unknown_order_is_refused(tmp_path, call):
    path = _write(tmp_path / "s.csv", ["id,predicted", "a,"])
    with pytest.raises(ValueError, match=r"order must be 'C' \(row-major runs, Sartorius "
                                         r"2021: id,predicted\) or 'F' \(column-major runs, "
                                         r"DSB 2018: ImageId,EncodedPixels\), got "):
        call(path)
