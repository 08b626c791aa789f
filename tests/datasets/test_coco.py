import copy
import json
import os

import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as mask_utils

from mrcnn.datasets.coco import CocoDataset, read_coco_json

H, W = 12, 10


def _expected_image1():
    """Hand-worked masks of image 1's annotations 11, 12, 13, 14 (15 is degenerate)."""
    m = np.zeros((H, W, 4), bool)
    m[3:9, 2:7, 0] = True     # polygon x 2..7, y 3..9: pixel (r, c) covers [c, c+1) x [r, r+1)
    m[0:2, 8, 1] = True       # uncompressed RLE, column-major: 96 off, 2 on, 22 off
    m[10:12, 0:3, 2] = True   # compressed RLE
    m[10:12, 0:4, 3] = True   # crowd polygon x 0..4, y 10..12
    return m


def _coco():
    compressed = mask_utils.encode(np.asfortranarray(_expected_image1()[..., 2].astype(np.uint8)))
    compressed["counts"] = compressed["counts"].decode("ascii")   # as stored in JSON
    return {
        "info": {"description": "test"},
        "images": [
            {"id": 1, "file_name": "a.png", "height": H, "width": W},
            {"id": 2, "file_name": "b.tif", "height": 8, "width": 8},
            {"id": 3, "file_name": "c.png", "height": 5, "width": 5},
        ],
        "categories": [{"id": 1, "name": "cell"}, {"id": 7, "name": "debris"}],
        "annotations": [
            {"id": 11, "image_id": 1, "category_id": 1, "iscrowd": 0,
             "segmentation": [[2, 3, 7, 3, 7, 9, 2, 9]]},
            {"id": 12, "image_id": 1, "category_id": 1, "iscrowd": 0,
             "segmentation": {"counts": [96, 2, 22], "size": [H, W]}},
            {"id": 13, "image_id": 1, "category_id": 7, "iscrowd": 0,
             "segmentation": compressed},
            {"id": 14, "image_id": 1, "category_id": 1, "iscrowd": 1,
             "segmentation": [[0, 10, 4, 10, 4, 12, 0, 12]]},
            {"id": 15, "image_id": 1, "category_id": 1, "iscrowd": 0,
             "segmentation": [[1, 1, 2, 2]]},
            {"id": 21, "image_id": 2, "category_id": 1, "iscrowd": 0,
             "segmentation": [[1, 1, 5, 1, 5, 5, 1, 5]]},
        ],
    }


def _write(tmp_path, data=None, name="ann.json"):
    images = tmp_path / "images"
    (images / "A172").mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((H, W), 50, np.uint8)).save(images / "a.png")
    Image.fromarray(np.full((8, 8), 60, np.uint8)).save(images / "A172" / "b.tif")  # nested
    Image.fromarray(np.full((5, 5), 70, np.uint8)).save(images / "c.png")
    path = tmp_path / name
    path.write_text(json.dumps(_coco() if data is None else data))
    return path, images


def _load(path, images, **kwargs):
    ds = CocoDataset()
    result = ds.load_coco(path, images, **kwargs)
    ds.prepare()
    return ds, result


def test_polygons_rle_and_crowd(tmp_path):
    ds, result = _load(*_write(tmp_path))
    assert result is None
    assert ds.class_names == ["BG", "cell", "debris"] and ds.num_images == 3
    masks, class_ids = ds.load_mask(0)
    np.testing.assert_array_equal(masks, _expected_image1())
    np.testing.assert_array_equal(class_ids, [1, 1, 2, -1])      # crowd: negative
    assert masks.dtype == bool and class_ids.dtype == np.int32
    expected = np.zeros((8, 8), bool)
    expected[1:5, 1:5] = True
    masks, class_ids = ds.load_mask(1)
    np.testing.assert_array_equal(masks[..., 0], expected)
    np.testing.assert_array_equal(class_ids, [1])
    masks, class_ids = ds.load_mask(2)                            # no annotations
    assert masks.shape == (5, 5, 0) and class_ids.shape == (0,)


def test_image_paths_and_reference(tmp_path):
    path, images = _write(tmp_path)
    ds, _ = _load(path, images, source="livecell")
    assert ds.image_info[1]["path"] == str(images / "A172" / "b.tif")
    np.testing.assert_array_equal(ds.load_image(1), np.full((8, 8, 3), 60, np.uint8))
    assert ds.image_reference(0) == "a.png (livecell image 1)"
    assert ds.class_from_source_map["livecell.7"] == 2


def test_livecell_annotations_dict_gives_the_same_masks(tmp_path):
    data = _coco()
    data["annotations"] = {str(a["id"]): a for a in data["annotations"]}
    ds, _ = _load(*_write(tmp_path, data))
    masks, class_ids = ds.load_mask(0)
    np.testing.assert_array_equal(masks, _expected_image1())
    np.testing.assert_array_equal(class_ids, [1, 1, 2, -1])


def test_class_ids_select_categories_and_images(tmp_path):
    ds, _ = _load(*_write(tmp_path), class_ids=[7])
    assert ds.class_names == ["BG", "debris"]
    assert [info["id"] for info in ds.image_info] == [1]
    masks, class_ids = ds.load_mask(0)
    np.testing.assert_array_equal(masks, _expected_image1()[..., 2:3])
    np.testing.assert_array_equal(class_ids, [1])
    with pytest.raises(ValueError, match=r"class_ids \[3\] are not categories"):
        _load(*_write(tmp_path), class_ids=[3])


def test_return_coco(tmp_path):
    path, images = _write(tmp_path)
    _, coco = _load(path, images, return_coco=True)
    assert sorted(coco.getAnnIds(imgIds=[1])) == [11, 12, 13, 14, 15]
    assert coco.loadCats([7])[0]["name"] == "debris"


def _mutated(change):
    data = copy.deepcopy(_coco())
    change(data)
    return data


@pytest.mark.parametrize("change, match", [
    (lambda d: d["annotations"][1].update(image_id=99),
     r"annotations\[1\] \(id 12\) refers to image_id 99"),
    (lambda d: d["annotations"][0].update(category_id=5),
     r"annotations\[0\] \(id 11\) refers to category_id 5"),
    (lambda d: d["annotations"][2].pop("segmentation"), r"annotations\[2\] \(id 13\) has no"),
    (lambda d: d["images"][1].pop("height"), r"images\[1\] \(id 2\) lacks \['height'\]"),
    (lambda d: d.pop("categories"), "expected a list under 'categories'"),
])
def test_malformed_file_names_file_and_entry(tmp_path, change, match):
    path, images = _write(tmp_path, _mutated(change))
    with pytest.raises(ValueError, match=match) as error:
        read_coco_json(path)
    assert str(path) in str(error.value)


def test_truncated_json(tmp_path):
    path, images = _write(tmp_path)
    path.write_text(path.read_text()[:150])
    with pytest.raises(ValueError, match=r"ann\.json: not valid JSON .* line 1, column"):
        _load(path, images)


@pytest.mark.parametrize("segmentation, match", [
    ({"counts": [96, 2, 30], "size": [H, W]}, "add up to 128 pixels, expected .* 120"),
    ({"counts": [96, 2, 22], "size": [W, H]}, r"RLE size \[10, 12\] differs"),
    ([[2, 3, 7, 3, 7, 9, 2]], "odd number of coordinates"),
    ("2 3 7 3", "segmentation must be a list of polygons or an RLE dict"),
])
def test_bad_segmentation_names_file_annotation_and_image(tmp_path, segmentation, match):
    path, images = _write(tmp_path, _mutated(
        lambda d: d["annotations"][1].update(segmentation=segmentation)))
    ds, _ = _load(path, images)
    with pytest.raises(ValueError, match=match) as error:
        ds.load_mask(0)
    assert f"{path}: annotation 12 of image 1 (a.png)" in str(error.value)


def test_missing_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="COCO annotation file not found"):
        _load(tmp_path / "none.json", tmp_path)
    path, images = _write(tmp_path)
    os.remove(images / "c.png")
    with pytest.raises(FileNotFoundError) as error:
        _load(path, images)
    assert "image 3" in str(error.value) and "'c.png'" in str(error.value)
    assert "1 of 3 images" in str(error.value)
