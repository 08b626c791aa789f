"""mrcnn.datasets.via: VIA exports read, regions drawn, against skimage.draw and hand cases."""

import json

import numpy as np
import pytest
import skimage.draw

from mrcnn.datasets.via import ViaDataset, read_via_json, region_mask

pytestmark = pytest.mark.backend_independent


def polygon(xs, ys, **attributes):
    return {"shape_attributes": {"name": "polygon", "all_points_x": xs, "all_points_y": ys},
            "region_attributes": attributes}


def test_polygon_and_rect_by_hand():
    square = region_mask({"name": "polygon", "all_points_x": [2, 6, 6, 2],
                          "all_points_y": [1, 1, 4, 4]}, 8, 10)
    expected = np.zeros((8, 10), bool)
    expected[1:5, 2:7] = True          # the outline's pixels are inside (skimage.draw.polygon)
    np.testing.assert_array_equal(square, expected)
    rect = region_mask({"name": "rect", "x": 2, "y": 1, "width": 5, "height": 4}, 8, 10)
    np.testing.assert_array_equal(rect, expected)      # columns x .. x + width - 1
    # cut at the image's edges
    edge = region_mask({"name": "rect", "x": -3, "y": 6, "width": 5, "height": 9}, 8, 10)
    assert edge.sum() == 2 * 2 and edge[6:, :2].all()


def test_circle_and_ellipse_against_skimage_draw():
    # centres and radii with no pixel centre on the outline, where the two rules (< and <=) agree
    circle = region_mask({"name": "circle", "cx": 10.3, "cy": 8.6, "r": 4.7}, 20, 24)
    expected = np.zeros((20, 24), bool)
    expected[skimage.draw.disk((8.6, 10.3), 4.7, shape=(20, 24))] = True
    np.testing.assert_array_equal(circle, expected)
    ellipse = region_mask({"name": "ellipse", "cx": 11.2, "cy": 9.7, "rx": 7.3, "ry": 3.4,
                           "theta": 0}, 20, 24)
    expected = np.zeros((20, 24), bool)
    expected[skimage.draw.ellipse(9.7, 11.2, 3.4, 7.3, shape=(20, 24))] = True
    np.testing.assert_array_equal(ellipse, expected)
    # a quarter turn swaps the axes
    turned = region_mask({"name": "ellipse", "cx": 11.2, "cy": 9.7, "rx": 3.4, "ry": 7.3,
                          "theta": np.pi / 2}, 20, 24)
    np.testing.assert_array_equal(turned, ellipse)


def test_ellipse_turns_clockwise_on_screen_as_via_draws_it():
    # x axis turned 45 degrees towards y (down): the long axis runs from top-left to bottom-right
    mask = region_mask({"name": "ellipse", "cx": 20, "cy": 20, "rx": 12, "ry": 3,
                        "theta": np.pi / 4}, 41, 41)
    assert mask[28, 28] and mask[12, 12]          # 11.3 px along the long axis
    assert not mask[12, 28] and not mask[28, 12]  # 11.3 px along the short one


def write_via(folder, data, images=("a.png", "b.png"), size=(12, 16)):
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    for name in images:
        Image.fromarray(np.zeros(size, np.uint8)).save(folder / name)
    path = folder / "via_region_data.json"
    path.write_text(json.dumps(data))
    return path


def test_via1_dict_regions_via2_list_and_project_files(tmp_path):
    region = polygon([1, 5, 5], [1, 1, 6])
    via1 = {"a.png12": {"filename": "a.png", "size": 12, "file_attributes": {},
                        "regions": {"1": region, "0": polygon([0, 2, 2], [0, 0, 2])}}}
    via2 = {"a.png12": {"filename": "a.png", "size": 12, "file_attributes": {},
                        "regions": [polygon([0, 2, 2], [0, 0, 2]), region]}}
    path = write_via(tmp_path, via1)
    first = read_via_json(path)
    path.write_text(json.dumps(via2))
    assert read_via_json(path) == first          # VIA 1's "0", "1" in index order
    path.write_text(json.dumps({"_via_settings": {}, "_via_img_metadata": via2}))
    assert read_via_json(path) == first


@pytest.mark.parametrize("region, message", [
    ({"shape_attributes": {"name": "point", "cx": 1, "cy": 2}}, "'point' has no area"),
    ({"shape_attributes": {"name": "circle", "cx": 1, "cy": 2}}, r"circle without \['r'\]"),
    ({"shape_attributes": {"name": "polygon", "all_points_x": [1, 2, 3],
                           "all_points_y": [1, 2]}}, "as many x as y points"),
    ({"region_attributes": {}}, "no 'shape_attributes'"),
])
def test_bad_regions_are_named(tmp_path, region, message):
    path = write_via(tmp_path, {"k": {"filename": "a.png", "regions": [region]}})
    with pytest.raises(ValueError, match=f"image 'a.png', region 0: .*{message}"):
        read_via_json(path)


def test_not_a_via_export(tmp_path):
    path = write_via(tmp_path, [1, 2])
    with pytest.raises(ValueError, match="expected VIA's export"):
        read_via_json(path)
    path.write_text("{not json")
    with pytest.raises(ValueError, match="not JSON"):
        read_via_json(path)
    with pytest.raises(FileNotFoundError, match="VIA annotation file not found"):
        read_via_json(tmp_path / "missing.json")


def test_dataset_classes_from_a_region_attribute(tmp_path):
    data = {"a": {"filename": "a.png", "regions": [
                polygon([1, 5, 5, 1], [1, 1, 4, 4], kind="nucleus"),
                {"shape_attributes": {"name": "circle", "cx": 10.2, "cy": 6.4, "r": 2.3},
                 "region_attributes": {"kind": "cell"}}]},
            "b": {"filename": "b.png", "regions": []}}
    path = write_via(tmp_path, data)
    dataset = ViaDataset()
    dataset.load_via(path, tmp_path, class_attribute="kind")
    dataset.prepare()
    assert dataset.class_names == ["BG", "cell", "nucleus"]
    assert [(i["height"], i["width"]) for i in dataset.image_info] == [(12, 16)] * 2
    masks, class_ids = dataset.load_mask(0)
    assert masks.shape == (12, 16, 2) and masks.dtype == bool
    assert [dataset.class_names[c] for c in class_ids] == ["nucleus", "cell"]
    assert masks[..., 0].sum() == 4 * 5
    assert masks[..., 1].sum() == np.count_nonzero(
        region_mask(data["a"]["regions"][1]["shape_attributes"], 12, 16))
    empty, ids = dataset.load_mask(1)
    assert empty.shape == (12, 16, 0) and ids.shape == (0,)
    one = ViaDataset()
    one.load_via(path, tmp_path, class_name="blob")
    one.prepare()
    assert one.class_names == ["BG", "blob"] and list(one.load_mask(0)[1]) == [1, 1]


def test_dataset_errors_name_the_entry(tmp_path):
    data = {"a": {"filename": "a.png", "regions": [polygon([1, 5, 5], [1, 1, 4])]}}
    path = write_via(tmp_path, data)
    with pytest.raises(ValueError, match=r"image 'a.png', region 0 has no 'kind'"):
        ViaDataset().load_via(path, tmp_path, class_attribute="kind")
    path.write_text(json.dumps({"a": {"filename": "../a.png", "regions": []}}))
    with pytest.raises(ValueError, match="leads outside the data folder"):
        ViaDataset().load_via(path, tmp_path)
    path.write_text(json.dumps({"a": {"filename": "c.png", "regions": []}}))
    with pytest.raises(FileNotFoundError, match="c.png"):
        ViaDataset().load_via(path, tmp_path)
