"""samples/coco/coco.py: Matterport's COCO sample, its classes, download and command line.

A small COCO set is written in Matterport's layout (``annotations/instances_<subset>2014.json``,
``train2014/``, ``val2014/``; JPEG images with rectangles, categories 1 and 3 so that class
ids and category ids differ). References: the rectangles' own masks and boxes, and COCO AP
of predictions whose overlap with the truth is known by construction.
"""

import json
import os
import shutil
import zipfile

import numpy as np
import pytest
from helpers import import_sample_module, readme_commands

# No backend op but in the command-line tests (marked sample_commands: their model is the one
# the model tests check on every backend).
pytestmark = pytest.mark.backend_independent

SIZE = 64
# (image id, [(category, y, x, h, w), ...]) per subset; image 13 has no annotation.
SUBSETS = {
    "train": [(1, [(1, 4, 4, 20, 16), (3, 30, 34, 18, 22)]), (2, [(3, 8, 10, 24, 24)])],
    "valminusminival": [(11, [(1, 12, 20, 14, 30)])],
    "minival": [(12, [(1, 6, 6, 16, 20), (3, 34, 28, 20, 18)]), (13, [])],
}
CATEGORIES = [{"id": 1, "name": "cell"}, {"id": 3, "name": "nucleus"}]


@pytest.fixture(scope="module")
def coco():
    """The sample imported as Matterport's notebooks import it (`import coco`)."""
    return import_sample_module(os.path.join("samples", "coco"))


def write_subset(folder, subset, items):
    """One subset's annotation file and JPEG images in Matterport's COCO layout."""
    from PIL import Image

    image_dir = folder / ("val2014" if subset in ("minival", "valminusminival") else "train2014")
    image_dir.mkdir(parents=True, exist_ok=True)
    (folder / "annotations").mkdir(exist_ok=True)
    data = {"images": [], "annotations": [], "categories": CATEGORIES}
    for image_id, boxes in items:
        pixels = np.full((SIZE, SIZE, 3), 30, np.uint8)
        for k, (category, y, x, h, w) in enumerate(boxes):
            pixels[y:y + h, x:x + w] = 120 + 60 * k
            data["annotations"].append({
                "id": 100 * image_id + k, "image_id": image_id, "category_id": category,
                "iscrowd": 0, "area": h * w, "bbox": [x, y, w, h],
                "segmentation": [[x, y, x + w, y, x + w, y + h, x, y + h]]})
        name = f"COCO_{image_id:012d}.jpg"
        Image.fromarray(pixels).save(image_dir / name, quality=95)
        data["images"].append({"id": image_id, "file_name": name, "height": SIZE, "width": SIZE})
    (folder / "annotations" / f"instances_{subset}2014.json").write_text(json.dumps(data))


@pytest.fixture(scope="module")
def dataset_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("coco")
    for subset, items in SUBSETS.items():
        write_subset(folder, subset, items)
    return folder


def truth(items, image_id):
    return dict(items)[image_id]


# ------------------------------------------------------------------ Matterport's classes
def test_coco_config_is_matterports(coco):
    config = coco.CocoConfig()
    assert (config.NAME, config.NUM_CLASSES, config.IMAGES_PER_GPU) == ("coco", 81, 2)
    assert config.BACKBONE == "resnet101" and config.BATCH_SIZE == 2

    class InferenceConfig(coco.CocoConfig):          # demo.ipynb
        GPU_COUNT = 1
        IMAGES_PER_GPU = 1
    assert InferenceConfig().BATCH_SIZE == 1


def test_load_coco_matterport_signature(coco, dataset_dir):
    dataset = coco.CocoDataset()
    returned = dataset.load_coco(str(dataset_dir), "minival", return_coco=True)
    dataset.prepare()
    # the image without annotations is left out, as in Matterport
    assert [info["id"] for info in dataset.image_info] == [12]
    assert dataset.class_names == ["BG", "cell", "nucleus"]
    assert dataset.image_info[0]["path"] == str(dataset_dir / "val2014" / "COCO_000000000012.jpg")
    assert sorted(returned.getImgIds()) == [12, 13]            # pycocotools' COCO of the file
    masks, class_ids = dataset.load_mask(0)
    for k, (category, y, x, h, w) in enumerate(truth(SUBSETS["minival"], 12)):
        expected = np.zeros((SIZE, SIZE), bool)
        expected[y:y + h, x:x + w] = True
        # a polygon's last row / column is rasterized on the boundary, as pycocotools does
        assert np.abs(masks[..., k].astype(int) - expected).sum() <= h + w + 1
        assert dataset.get_source_class_id(int(class_ids[k]), "coco") == category
    assert dataset.image_reference(0) == "http://cocodataset.org/#explore?id=12"


def test_train_2014_is_train_and_valminusminival(coco, dataset_dir):
    dataset = coco.CocoDataset()
    dataset.load_coco(dataset_dir, "train")
    dataset.load_coco(dataset_dir, "valminusminival", year=2014)
    dataset.prepare()
    assert [info["id"] for info in dataset.image_info] == [1, 2, 11]
    assert os.path.dirname(dataset.image_info[2]["path"]) == str(dataset_dir / "val2014")


def test_load_coco_errors_name_what_is_wrong(coco, dataset_dir, tmp_path):
    dataset = coco.CocoDataset()
    with pytest.raises(ValueError, match=r"subset must be one of .*'minval'"):
        dataset.load_coco(dataset_dir, "minval")
    with pytest.raises(ValueError, match=r"year must be one of .*'2015'"):
        dataset.load_coco(dataset_dir, "train", year="2015")
    with pytest.raises(FileNotFoundError, match=r"instances_val2017\.json.*--download=True"):
        dataset.load_coco(tmp_path, "val", year="2017")


# ------------------------------------------------------------------ results and COCO AP
class Oracle:
    """A stand-in for an inference model: detect() returns each image's true rectangles,
    shifted right by `shift` pixels (IoU of a w-wide box with itself shifted: (w-s)/(w+s))."""

    def __init__(self, dataset, shift=0):
        self.dataset, self.shift = dataset, shift

    def detect(self, images, verbose=0):
        image_id = next(i for i in self.dataset.image_ids
                        if np.array_equal(self.dataset.load_image(i), images[0]))
        masks, class_ids = self.dataset.load_mask(image_id)
        masks = np.roll(masks, self.shift, axis=1)
        rois = np.array([[ys.min(), xs.min(), ys.max() + 1, xs.max() + 1]
                         for ys, xs in (np.nonzero(masks[..., k]) for k in range(len(class_ids)))])
        return [{"rois": rois, "class_ids": class_ids, "scores": np.full(len(class_ids), 0.9),
                 "masks": masks}]


def test_build_coco_results_matterports_fields(coco, dataset_dir):
    from pycocotools import mask as mask_utils

    dataset = coco.CocoDataset()
    dataset.load_coco(dataset_dir, "minival")
    dataset.prepare()
    r = Oracle(dataset).detect([dataset.load_image(0)])[0]
    results = coco.build_coco_results(dataset, [12], r["rois"], r["class_ids"], r["scores"],
                                      r["masks"].astype(np.uint8))
    assert [res["category_id"] for res in results] == [1, 3]     # category ids, not class ids
    for res, roi, k in zip(results, r["rois"], range(2)):
        y1, x1, y2, x2 = roi
        assert res["bbox"] == [x1, y1, x2 - x1, y2 - y1] and res["image_id"] == 12
        np.testing.assert_array_equal(mask_utils.decode(res["segmentation"]),
                                      r["masks"][..., k].astype(np.uint8))
    with pytest.raises(ValueError, match="one-element list"):
        coco.build_coco_results(dataset, [12, 13], r["rois"], r["class_ids"], r["scores"],
                                r["masks"])
    with pytest.raises(ValueError, match="same detections"):
        coco.build_coco_results(dataset, [12], r["rois"][:1], r["class_ids"], r["scores"],
                                r["masks"])


@pytest.mark.parametrize("eval_type", ["bbox", "segm"])
def test_evaluate_coco_against_known_overlaps(coco, dataset_dir, eval_type):
    dataset = coco.CocoDataset()
    annotations = dataset.load_coco(dataset_dir, "minival", return_coco=True)
    dataset.prepare()
    perfect = coco.evaluate_coco(Oracle(dataset), dataset, annotations, eval_type)
    assert perfect.stats[0] == pytest.approx(1.0) and perfect.stats[1] == pytest.approx(1.0)
    # Shifted 4 px along x: a w-wide rectangle overlaps its truth at IoU (w - 4) / (w + 4), so
    # with one object per category its AP is the share of the thresholds 0.50, 0.55, ... 0.95
    # at or below that IoU; COCO's AP is the mean over the two categories.
    shifted = coco.evaluate_coco(Oracle(dataset, shift=4), dataset, annotations, eval_type)
    thresholds = np.linspace(0.5, 0.95, 10)
    widths = [w for _, _, _, _, w in truth(SUBSETS["minival"], 12)]           # 20, 18
    expected = np.mean([np.mean(thresholds <= (w - 4) / (w + 4) + 1e-12) for w in widths])
    assert expected == pytest.approx((0.4 + 0.3) / 2)       # IoU 16/24 and 14/22 by hand
    assert shifted.stats[0] == pytest.approx(expected)
    assert shifted.stats[1] == pytest.approx(1.0)                 # AP50
    assert shifted.stats[2] == pytest.approx(0.0)                 # AP75
    with pytest.raises(ValueError, match="eval_type"):
        coco.evaluate_coco(Oracle(dataset), dataset, annotations, "masks")


# ------------------------------------------------------------------ download
def zip_folder(target, folder, arcroot):
    with zipfile.ZipFile(target, "w") as archive:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                archive.write(path, os.path.join(arcroot, path.relative_to(folder)))


def test_download_in_cocos_real_archives(coco, dataset_dir, tmp_path, monkeypatch):
    """cocodataset.org's archives (val2014.zip holding val2014/, annotations_trainval2014.zip
    holding annotations/, Detectron's instances_minival2014.json.zip holding the bare file),
    served from file:// URLs in place of the network."""
    from mrcnn.datasets import coco_layout

    server = tmp_path / "server"
    server.mkdir()
    zip_folder(server / "val2014.zip", dataset_dir / "val2014", "val2014")
    with zipfile.ZipFile(server / "instances_minival2014.json.zip", "w") as archive:
        archive.write(dataset_dir / "annotations" / "instances_minival2014.json",
                      "instances_minival2014.json")
    monkeypatch.setattr(coco_layout, "IMAGES_URL", f"file://{server}/{{name}}.zip")
    monkeypatch.setitem(coco_layout.ANNOTATION_URLS, "minival",
                        f"file://{server}/instances_minival2014.json.zip")
    target = tmp_path / "coco"
    dataset = coco.CocoDataset()
    dataset.load_coco(target, "minival", auto_download=True)
    dataset.prepare()
    assert [info["id"] for info in dataset.image_info] == [12]
    assert sorted(os.listdir(target)) == ["annotations", "val2014"]      # zips removed
    assert (target / "annotations" / "instances_minival2014.json").read_bytes() == \
        (dataset_dir / "annotations" / "instances_minival2014.json").read_bytes()
    # nothing missing: no download (the server's files are gone)
    shutil.rmtree(server)
    coco.CocoDataset().load_coco(target, "minival", auto_download=True)


def test_download_of_a_broken_archive_leaves_no_image_folder(tmp_path):
    import zipfile as zf

    from mrcnn.datasets.coco_layout import download_coco

    server = tmp_path / "server"
    server.mkdir()
    (server / "val2014.zip").write_bytes(b"PK\x03\x04 not a whole zip")
    target = tmp_path / "coco"
    with pytest.raises(zf.BadZipFile):
        download_coco(target, "val", "2014", images_url=f"file://{server}/val2014.zip",
                      verbose=0)
    assert not (target / "val2014").exists()
    assert [p for p in os.listdir(target) if p.startswith(".unpack")] == []


def test_trainval_archive_fills_both_annotation_files(tmp_path, dataset_dir):
    from mrcnn.datasets.coco_layout import download_coco

    server = tmp_path / "server"
    (server / "annotations").mkdir(parents=True)
    for subset in ("train", "val"):
        shutil.copy(dataset_dir / "annotations" / "instances_train2014.json",
                    server / "annotations" / f"instances_{subset}2014.json")
    zip_folder(tmp_path / "annotations_trainval2014.zip", server / "annotations", "annotations")
    target = tmp_path / "coco"
    (target / "train2014").mkdir(parents=True)
    annotation_json, image_dir = download_coco(
        target, "train", 2014,
        annotations_url=f"file://{tmp_path}/annotations_trainval2014.zip", verbose=0)
    assert annotation_json == str(target / "annotations" / "instances_train2014.json")
    assert sorted(os.listdir(target / "annotations")) == ["instances_train2014.json",
                                                           "instances_val2014.json"]


# ------------------------------------------------------------------ command line
SMALL = ["--backbone", "small-cnn", "--image-size", "64", "--steps-per-epoch", "1",
         "--validation-steps", "1"]


@pytest.mark.sample_commands
def test_readme_commands_run_as_written(coco, dataset_dir, tmp_path, monkeypatch, capsys):
    """README's three commands on the small set: COCO's file (here a small-cnn model's weights
    saved by layer name under Matterport's name) starts a 3-class model without its class heads;
    'last' continues that run; evaluate scores it."""
    import mrcnn.model as modellib

    commands = readme_commands("coco-sample")
    assert [c[:3] for c in commands] == [["python3", "samples/coco/coco.py", "train"]] * 2 + [
        ["python3", "samples/coco/coco.py", "evaluate"]]
    assert [c[-1] for c in commands] == ["--model=coco", "--model=last", "--model=last"]
    source = modellib.MaskRCNN("inference", coco.make_config(
        coco.build_parser().parse_args(["evaluate", "--dataset=d", "--model=none"] + SMALL),
        inference=True), str(tmp_path / "source"))
    coco_h5 = str(tmp_path / "mask_rcnn_coco.h5")
    source.keras_model.save_weights(coco_h5)               # 81 classes, Matterport's format
    monkeypatch.setattr(coco, "COCO_MODEL_PATH", coco_h5)
    logs = str(tmp_path / "logs")
    small = [["--epochs", "1,1,2"], ["--epochs", "1,2,3"], ["--limit=1", "--eval-type=segm"]]
    outputs = []
    for words, extra in zip(commands, small):
        args = [w.replace("/path/to/coco/", str(dataset_dir)) for w in words[2:]]
        result = coco.main(args + [f"--logs={logs}"] + SMALL + extra)
        outputs.append(capsys.readouterr().out)
    first, resumed, evaluated = outputs
    assert "NUM_CLASSES = 3: the data's 2 categories" in first
    loaded = next(line for line in first.splitlines() if line.startswith("Loaded weights "))
    assert loaded.startswith(f"Loaded weights {coco_h5} (left out: ")
    # the class-specific layers that hold weights (Matterport's "mrcnn_bbox" is a reshape)
    assert set(loaded[loaded.index("left out: ") + 10:-1].split(", ")) == {
        "mrcnn_class_logits", "mrcnn_bbox_fc", "mrcnn_mask"}
    assert "Fine tune Resnet stage 4 and up: done (the model has trained 1 epochs)" in first
    run, = os.listdir(logs)
    assert sorted(f for f in os.listdir(os.path.join(logs, run)) if f.startswith("mask_rcnn")) \
        == ["mask_rcnn_coco_0001.h5", "mask_rcnn_coco_0002.h5", "mask_rcnn_coco_0003.h5"]
    assert "Fine tune all layers: done" not in resumed and "Starting at epoch 2." in resumed
    assert "Running COCO evaluation on 1 images." in evaluated
    assert (result is None) == ("no detections on the 1 images: every AP is 0" in evaluated)
    if result is not None:        # a model of 3 small steps may find nothing at all
        assert "Average Precision  (AP) @[ IoU=0.50:0.95" in evaluated
        assert 0.0 <= result.stats[0] <= 1.0


@pytest.mark.sample_commands
def test_command_line_errors_are_messages(coco, dataset_dir, tmp_path, monkeypatch, offline):
    monkeypatch.setattr(coco, "COCO_MODEL_PATH", str(tmp_path / "mask_rcnn_coco.h5"))
    common = [f"--dataset={dataset_dir}", f"--logs={tmp_path / 'logs'}"] + SMALL
    with pytest.raises(SystemExit, match=r"--model=last: .*"):
        coco.main(["evaluate", "--model=last"] + common)
    with pytest.raises(SystemExit, match=r"--model=coco: .*mask_rcnn_coco\.h5"):
        coco.main(["evaluate", "--model=coco"] + common)
    with pytest.raises(SystemExit, match=r"--dataset=.*instances_val2017\.json"):
        coco.main(["evaluate", "--model=none", "--year=2017",
                   f"--dataset={tmp_path}"] + SMALL)
    with pytest.raises(SystemExit):
        coco.main(["train", "--model=none", "--epochs", "3,2,4"] + common)
    assert coco.build_parser().parse_args(
        ["train", "--dataset=d", "--model=none", "--download=False"]).download is False
