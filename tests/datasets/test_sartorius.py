import csv
import os
import re

import numpy as np
import pytest
from PIL import Image

from mrcnn import datasets
from mrcnn.data import rle as rle_module
from mrcnn.data.rle import rle_encode
from mrcnn.datasets.sartorius import SartoriusDataset, read_sartorius_csv

# Backend-independent: train.csv parsing and RLE masks in NumPy; no Keras op.
pytestmark = pytest.mark.backend_independent

HEADER = ["id", "annotation", "width", "height", "cell_type", "plate_time", "sample_date",
          "sample_id", "elapsed_timedelta"]
H, W = 6, 8


def _meta(cell_type):
    return ["11h30m00s", "2019-06-16", f"{cell_type}[diff]_F10_4", "0 days 11:30:00"]


def _write_csv(path, rows, header=HEADER):
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)


def _hand_masks():
    """Two 6x8 images with hand-drawn, partly overlapping instances."""
    a = np.zeros((H, W, 2), bool)
    a[1:3, 1:4, 0] = True                  # 2x3 block
    a[2:5, 3:8, 1] = True                  # overlaps the block at (2, 3)
    b = np.zeros((H, W, 1), bool)
    b[5, 6:8, 0] = True                    # bottom-right corner, ends at the last pixel
    return {"aaa": ("shsy5y", a), "bbb": ("astro", b)}


def _write_dataset(root, images=None, interleave=True):
    """Sartorius layout: train.csv + train/<id>.png; returns the expected masks."""
    images = images or _hand_masks()
    os.makedirs(root / "train", exist_ok=True)
    rows = []
    for image_id, (cell_type, masks) in images.items():
        Image.fromarray(np.full((H, W), 100, np.uint8)).save(root / "train" / f"{image_id}.png")
        rows.append([[image_id, rle_encode(masks[..., i]), W, H, cell_type] + _meta(cell_type)
                     for i in range(masks.shape[-1])])
    flat = [r for group in rows for r in group]
    if interleave:   # rows of one image need not be adjacent: a, b, a
        flat = [flat[0], flat[2], flat[1]] if len(flat) == 3 else flat
    _write_csv(root / "train.csv", flat)
    return images


def _load(root, **kwargs):
    ds = SartoriusDataset()
    ds.load_sartorius(root, **kwargs)
    ds.prepare()
    return ds


def test_decode_rle_stack_is_exported_from_its_home():
    assert datasets.decode_rle_stack is rle_module.decode_rle_stack


def test_read_csv_groups_rows_by_image(tmp_path):
    images = _write_dataset(tmp_path)
    records = read_sartorius_csv(tmp_path / "train.csv")
    assert list(records) == ["aaa", "bbb"]
    a = records["aaa"]
    assert (a.height, a.width, a.cell_type) == (H, W, "shsy5y")
    assert a.lines == (2, 4)                 # header is line 1; rows a, b, a
    assert a.annotations == tuple(rle_encode(images["aaa"][1][..., i]) for i in range(2))
    assert a.metadata == dict(zip(HEADER[5:], _meta("shsy5y")))
    assert records["bbb"].lines == (3,)


def test_load_mask_equals_hand_masks_and_cell_type_classes(tmp_path):
    images = _write_dataset(tmp_path)
    ds = _load(tmp_path)
    assert ds.class_names == ["BG", "astro", "cort", "shsy5y"]
    assert [info["id"] for info in ds.image_info] == ["aaa", "bbb"]
    masks, class_ids = ds.load_mask(0)
    np.testing.assert_array_equal(masks, images["aaa"][1])
    np.testing.assert_array_equal(class_ids, [3, 3])          # shsy5y
    assert masks.dtype == bool and class_ids.dtype == np.int32
    masks, class_ids = ds.load_mask(1)
    np.testing.assert_array_equal(masks, images["bbb"][1])
    np.testing.assert_array_equal(class_ids, [1])             # astro
    info = ds.image_info[0]
    assert info["sample_id"] == "shsy5y[diff]_F10_4" and info["plate_time"] == "11h30m00s"
    assert ds.image_reference(1) == f"bbb (astro, {tmp_path / 'train' / 'bbb.png'})"


def test_single_class_mode_and_image_id_subset(tmp_path):
    images = _write_dataset(tmp_path)
    ds = _load(tmp_path, image_ids=["bbb"], class_mode="single")
    assert ds.class_names == ["BG", "cell"] and ds.num_images == 1
    masks, class_ids = ds.load_mask(0)
    np.testing.assert_array_equal(masks, images["bbb"][1])
    np.testing.assert_array_equal(class_ids, [1])
    with pytest.raises(ValueError, match=r"not in .*train\.csv.*'zzz'"):
        _load(tmp_path, image_ids=["zzz"])
    with pytest.raises(ValueError, match="class_mode"):
        _load(tmp_path, class_mode="types")


def test_class_ids_do_not_depend_on_the_subset(tmp_path):
    _write_dataset(tmp_path)
    # only astro images: astro is still class 1 of (astro, cort, shsy5y)
    ds = _load(tmp_path, image_ids=["bbb"])
    assert ds.class_names == ["BG", "astro", "cort", "shsy5y"]
    ds = _load(tmp_path, cell_types=None)             # the types found in the CSV
    assert ds.class_names == ["BG", "astro", "shsy5y"]
    np.testing.assert_array_equal(ds.load_mask(0)[1], [2, 2])


def test_load_mask_does_not_reread_the_csv(tmp_path):
    images = _write_dataset(tmp_path)
    ds = _load(tmp_path)
    os.remove(tmp_path / "train.csv")
    np.testing.assert_array_equal(ds.load_mask(0)[0], images["aaa"][1])


def test_csv_is_parsed_once_per_file_version(tmp_path):
    _write_dataset(tmp_path)
    path = tmp_path / "train.csv"
    first = read_sartorius_csv(path)
    assert read_sartorius_csv(path) is first
    with open(path, "a", newline="") as f:
        csv.writer(f).writerow(["ccc", "1 2", W, H, "cort"] + _meta("cort"))
    os.utime(path, ns=(1, 1))        # a different modification time and size
    second = read_sartorius_csv(path)
    assert second is not first and list(second) == ["aaa", "bbb", "ccc"]


@pytest.mark.parametrize("rle, reason", [
    ("5 2 9", "even number of values"),
    ("5 2 40 10", "past the end of the image"),      # 6x8 = 48 pixels; 40 + 10 - 1 = 49
    ("0 3", "start below 1"),
    ("5 x", "non-integer"),
    ("5 0", "length below 1"),
])
def test_bad_rle_names_file_line_and_id(tmp_path, rle, reason):
    _write_dataset(tmp_path)
    rows = list(csv.reader(open(tmp_path / "train.csv")))
    rows[3][1] = rle                      # line 4 = second instance of "aaa"
    _write_csv(tmp_path / "train.csv", rows[1:])
    ds = _load(tmp_path)
    np.testing.assert_array_equal(ds.load_mask(1)[1], [1])   # other image unaffected
    with pytest.raises(ValueError) as error:
        ds.load_mask(0)
    message = str(error.value)
    assert str(tmp_path / "train.csv") in message
    assert "line 4" in message and "'aaa'" in message and reason in message


TOP = ",".join(HEADER) + "\n"


@pytest.mark.parametrize("content, match", [
    ("", "is empty"),
    (TOP, "no annotation rows"),
    ("id,annotation,width,height\naaa,1 2,8,6\n",
     r"line 1: missing column\(s\) \['cell_type'\]"),
    (TOP + "aaa,1 2,8,6,astro,a,b,c\n", r"line 2 \(id 'aaa'\): 8 fields, expected 9"),
    (TOP + "aaa,1 2,8,six,astro,a,b,c,d\n", r"line 2 \(id 'aaa'\): height 'six' is not"),
    (TOP + "aaa,1 2,0,6,astro,a,b,c,d\n", r"line 2 \(id 'aaa'\): width must be positive"),
    (TOP + "aaa,,8,6,astro,a,b,c,d\n", r"line 2 \(id 'aaa'\): empty annotation"),
    (TOP + ",1 2,8,6,astro,a,b,c,d\n", "line 2: empty id"),
    (TOP + "aaa,1 2,8,6,astro,a,b,c,d\nbbb,1 2,8,6,cort,a,b,c,d\naaa,3 2,9,6,astro,a,b,c,d\n",
     r"line 4 \(id 'aaa'\): width is 9 but line 2"),
    (TOP + "aaa,1 2,8,6,astro,a,b,c,d\naaa,3 2,8,6,cort,a,b,c,d\n",
     r"line 3 \(id 'aaa'\): cell_type is 'cort' but line 2"),
])
def test_malformed_csv_names_file_and_line(tmp_path, content, match):
    path = tmp_path / "train.csv"
    path.write_text(content)
    with pytest.raises(ValueError, match=match) as error:
        read_sartorius_csv(path)
    assert str(path) in str(error.value)


def test_missing_csv_and_missing_image(tmp_path):
    with pytest.raises(FileNotFoundError, match="train.csv"):
        _load(tmp_path)
    _write_dataset(tmp_path)
    os.remove(tmp_path / "train" / "bbb.png")
    with pytest.raises(FileNotFoundError) as error:
        _load(tmp_path)
    message = str(error.value)
    assert "'bbb'" in message and str(tmp_path / "train" / "bbb.png") in message
    assert "line 3" in message and "1 of 2 images" in message


def test_unknown_cell_type_names_line(tmp_path):
    _write_dataset(tmp_path, {"aaa": ("microglia", np.ones((H, W, 1), bool))})
    with pytest.raises(ValueError, match=r"line 2 \(id 'aaa'\): unknown cell_type 'microglia'"):
        _load(tmp_path)


def test_images_converted_to_gray_rgb(tmp_path):
    _write_dataset(tmp_path)
    gray = np.arange(H * W, dtype=np.uint8).reshape(H, W) * 3
    path = tmp_path / "train" / "aaa.png"
    Image.fromarray(gray).save(path)
    ds = _load(tmp_path)
    image = ds.load_image(0)
    assert image.shape == (H, W, 3) and image.dtype == np.uint8
    np.testing.assert_array_equal(image, np.repeat(gray[..., None], 3, -1))

    # 16-bit: 0..65535 maps to 0..255 (values above 4095 present)
    wide = (np.arange(H * W).reshape(H, W) * 1000 + 5000).astype(np.uint16)
    Image.fromarray(wide).save(path)
    image = ds.load_image(0)
    np.testing.assert_array_equal(image[..., 1], np.rint(wide * (255 / 65535)).astype(np.uint8))

    # colour RGB where grayscale is expected: luminance, replicated
    rgb = np.zeros((H, W, 3), np.uint8)
    rgb[..., 0], rgb[..., 1], rgb[..., 2] = 200, 100, 50
    Image.fromarray(rgb).save(path)
    image = ds.load_image(0)
    np.testing.assert_array_equal(image, np.full((H, W, 3), round(0.299 * 200 + 0.587 * 100
                                                                  + 0.114 * 50), np.uint8))


def test_image_size_must_match_csv(tmp_path):
    _write_dataset(tmp_path)
    Image.fromarray(np.zeros((H + 1, W), np.uint8)).save(tmp_path / "train" / "aaa.png")
    ds = _load(tmp_path)
    with pytest.raises(ValueError, match=r"'aaa'.* is 7x8 but .*train\.csv, line 2 says 6x8"):
        ds.load_image(0)


def test_load_unlabeled_images(tmp_path):
    _write_dataset(tmp_path)
    semi = tmp_path / "train_semi_supervised"
    semi.mkdir()
    Image.fromarray(np.zeros((10, 12), np.uint8)).save(semi / "uuu.png")
    ds = SartoriusDataset()
    ds.load_sartorius(tmp_path)
    ds.load_unlabeled(tmp_path)
    ds.prepare()
    assert ds.num_images == 3 and ds.class_names == ["BG", "astro", "cort", "shsy5y"]
    masks, class_ids = ds.load_mask(2)
    assert masks.shape == (10, 12, 0) and class_ids.shape == (0,)
    assert ds.load_image(2).shape == (10, 12, 3)
    assert ds.image_reference(2).startswith("uuu (unlabeled, ")
    with pytest.raises(FileNotFoundError, match="'vvv'"):
        ds.load_unlabeled(tmp_path, image_ids=["vvv"])
    with pytest.raises(ValueError, match="already uses class_mode='cell_type'"):
        ds.load_unlabeled(tmp_path, class_mode="single")


# ---------------------------------------------------------------- hostile input (issue 15)
def test_non_utf8_csv_names_the_file_byte_and_line(tmp_path):
    _write_dataset(tmp_path)
    path = tmp_path / "train.csv"
    data = path.read_bytes()
    lines = data.split(b"\n")
    lines[2] = lines[2].replace(b"astro", b"astr\xe9")      # Latin-1 e-acute on line 3
    path.write_bytes(b"\n".join(lines))
    offset = data.index(b"astro") + 4
    with pytest.raises(ValueError) as error:
        read_sartorius_csv(path)
    message = str(error.value)
    assert message.startswith(f"{path}: not UTF-8 text")
    assert f"byte 0xe9 at byte offset {offset} (line 3, column " in message
    assert isinstance(error.value.__cause__, UnicodeDecodeError)


def test_csv_syntax_error_names_the_file_and_line(tmp_path):
    path = tmp_path / "train.csv"
    huge = "x" * (csv.field_size_limit() + 1)            # the csv module's field limit
    path.write_text(TOP + "aaa,1 2,8,6,astro,a,b,c,d\n" + f"bbb,1 2,8,6,astro,a,{huge},c,d\n")
    with pytest.raises(ValueError, match=r"train\.csv, line 3: malformed CSV \(field larger"):
        read_sartorius_csv(path)


@pytest.mark.parametrize("bad_id", ["../../outside", "/etc/passwd", "sub/../../x", "..\\x"])
def test_ids_that_leave_the_data_folder_are_refused(tmp_path, bad_id):
    # the image file an id names must stay inside <data_dir>/<subset>
    data = tmp_path / "data"
    _write_dataset(data)
    outside = tmp_path / "outside.png"
    Image.fromarray(np.full((H, W), 9, np.uint8)).save(outside)
    _write_csv(data / "train.csv", [[bad_id, "1 2", W, H, "astro"] + _meta("astro")])
    with pytest.raises(ValueError) as error:
        _load(data)
    message = str(error.value)
    assert f"line 2 (id {bad_id!r})" in message and "allow_outside=True" in message
    assert "outside" in message and str(data / "train") in message


def test_allow_outside_reads_a_path_outside_the_folder(tmp_path):
    data = tmp_path / "data"
    _write_dataset(data)
    Image.fromarray(np.full((H, W), 9, np.uint8)).save(tmp_path / "shared.png")
    _write_csv(data / "train.csv", [["../../shared", "1 2", W, H, "astro"] + _meta("astro")])
    ds = _load(data, allow_outside=True)
    np.testing.assert_array_equal(ds.load_image(0), np.full((H, W, 3), 9, np.uint8))


def test_unlabeled_ids_that_leave_the_folder_are_refused(tmp_path):
    _write_dataset(tmp_path)
    (tmp_path / "train_semi_supervised").mkdir()
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(tmp_path / "x.png")
    with pytest.raises(ValueError, match=r"unlabeled image '\.\./x'.*allow_outside=True"):
        SartoriusDataset().load_unlabeled(tmp_path, image_ids=["../x"])
    ds = SartoriusDataset()
    ds.load_unlabeled(tmp_path, image_ids=["../x"], allow_outside=True)
    assert ds.image_info[0]["height"] == 4


def test_image_bit_depth_reaches_sartorius_images(tmp_path):
    _write_dataset(tmp_path)
    wide = (np.arange(H * W).reshape(H, W) * 80).astype(np.uint16)      # max 3760: 12-bit data
    Image.fromarray(wide).save(tmp_path / "train" / "aaa.png")
    for ds, top in [(SartoriusDataset(), 65535), (SartoriusDataset(image_bit_depth=12), 4095)]:
        ds.load_sartorius(tmp_path)
        ds.prepare()
        np.testing.assert_array_equal(ds.load_image(0)[..., 0],
                                      np.rint(wide * (255 / top)).astype(np.uint8))


@pytest.mark.parametrize("width", ["1_0", "+8", "\u0668", "８"])
def test_width_and_height_take_ascii_digits_only(tmp_path, width):
    # int() accepts all of these (as 10, 8, 8, 8)
    path = tmp_path / "train.csv"
    path.write_text(TOP + f"aaa,1 2,{width},6,astro,a,b,c,d\n", encoding="utf-8")
    with pytest.raises(ValueError, match=rf"line 2 \(id 'aaa'\): width {re.escape(repr(width))} "
                                         rf"is not an integer \(digits 0-9\)"):
        read_sartorius_csv(path)


def test_load_pseudo_labels_reads_another_folder_and_marks_its_images(tmp_path):
    images = _write_dataset(tmp_path)
    os.makedirs(tmp_path / "semi")
    os.replace(tmp_path / "train" / "bbb.png", tmp_path / "semi" / "bbb.png")
    ds = SartoriusDataset()
    ds.load_pseudo_labels(tmp_path / "train.csv", tmp_path / "semi", image_ids=["bbb"])
    ds.prepare()
    assert [i["id"] for i in ds.image_info] == ["bbb"] and ds.image_info[0]["pseudo_label"]
    assert ds.image_info[0]["path"] == str(tmp_path / "semi" / "bbb.png")
    np.testing.assert_array_equal(ds.load_mask(0)[0], images["bbb"][1])
    # The classes must agree with the labelled set's.
    with pytest.raises(ValueError, match="already uses class_mode='cell_type'"):
        ds.load_pseudo_labels(tmp_path / "train.csv", tmp_path / "semi", image_ids=["bbb"],
                              class_mode="single")


def test_empty_cell_type_is_only_accepted_by_the_single_class(tmp_path):
    _write_dataset(tmp_path, {"aaa": ("", np.ones((H, W, 1), bool))})
    assert _load(tmp_path, class_mode="single").load_mask(0)[1].tolist() == [1]
    with pytest.raises(ValueError, match=r"line 2 \(id 'aaa'\): unknown cell_type ''"):
        _load(tmp_path)
