"""samples/balloon/balloon.py: Matterport's own-dataset template on a small VIA-annotated set.

The set is written as Matterport's balloon data is laid out (``train/`` and ``val/``, JPEG
images, VIA 1.x's ``via_region_data.json`` with polygons in a dict of regions, one image with
no region). The splash is checked against skimage's gray conversion pixel by pixel.
"""

import json
import os

import numpy as np
import pytest
from helpers import import_sample_module, readme_commands
import skimage.draw
import skimage.io

# No backend op but in the command-line tests (marked sample_commands: their model is the one
# the model tests check on every backend).
pytestmark = pytest.mark.backend_independent

SMALL = ["--backbone", "small-cnn", "--image-size", "64", "--steps-per-epoch", "1"]


@pytest.fixture(scope="module")
def balloon():
    """The sample imported as Matterport's notebooks import it (`import balloon`)."""
    return import_sample_module(os.path.join("samples", "balloon"))


def ellipse_polygon(cx, cy, rx, ry, n=16):
    angles = np.linspace(0, 2 * np.pi, n, endpoint=False)
    return ([int(round(cx + rx * np.cos(a))) for a in angles],
            [int(round(cy + ry * np.sin(a))) for a in angles])


@pytest.fixture(scope="module")
def dataset_dir(tmp_path_factory):
    from PIL import Image

    root = tmp_path_factory.mktemp("balloon")
    rng = np.random.default_rng(3)
    for subset, n in (("train", 3), ("val", 2)):
        folder = root / subset
        folder.mkdir()
        data = {}
        for i in range(n):
            image = rng.integers(0, 60, (64, 64, 3)).astype(np.uint8)
            regions = {}
            if i < n - 1 or subset == "train":       # the last val image has no balloon
                xs, ys = ellipse_polygon(30 + 4 * i, 28, 14, 18)
                image[skimage.draw.polygon(ys, xs, (64, 64))] = (200, 40, 40)
                regions["0"] = {"shape_attributes": {"name": "polygon", "all_points_x": xs,
                                                     "all_points_y": ys},
                                "region_attributes": {}}
            name = f"{subset}_{i}.jpg"
            Image.fromarray(image).save(folder / name, quality=95)
            size = os.path.getsize(folder / name)
            data[f"{name}{size}"] = {"filename": name, "size": size, "regions": regions,
                                     "file_attributes": {}}
        (folder / "via_region_data.json").write_text(json.dumps(data))
    return root


def test_config_and_dataset_are_matterports(balloon, dataset_dir):
    config = balloon.BalloonConfig()
    assert (config.NAME, config.NUM_CLASSES, config.IMAGES_PER_GPU, config.STEPS_PER_EPOCH,
            config.DETECTION_MIN_CONFIDENCE) == ("balloon", 2, 2, 100, 0.9)
    val = balloon.BalloonDataset()
    val.load_balloon(str(dataset_dir), "val")
    val.prepare()
    assert [i["id"] for i in val.image_info] == ["val_0.jpg"]        # no-region image left out
    assert val.class_names == ["BG", "balloon"]
    masks, class_ids = val.load_mask(0)
    xs, ys = ellipse_polygon(30, 28, 14, 18)
    expected = np.zeros((64, 64), bool)
    expected[skimage.draw.polygon(ys, xs, (64, 64))] = True
    np.testing.assert_array_equal(masks[..., 0], expected)
    assert list(class_ids) == [1]
    with pytest.raises(ValueError, match="subset must be 'train' or 'val'"):
        balloon.BalloonDataset().load_balloon(str(dataset_dir), "test")


def test_color_splash_keeps_colour_only_under_the_masks(balloon):
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (20, 30, 3)).astype(np.uint8)
    mask = np.zeros((20, 30, 2), bool)
    mask[2:8, 3:9, 0] = True
    mask[5:15, 20:28, 1] = True
    splash = balloon.color_splash(image, mask)
    assert splash.dtype == np.uint8 and splash.shape == image.shape
    covered = mask.any(-1)
    np.testing.assert_array_equal(splash[covered], image[covered])
    weights = np.array([0.2125, 0.7154, 0.0721])          # skimage's rgb2gray, by hand
    gray = ((image / 255.0) @ weights * 255).astype(np.uint8)
    np.testing.assert_allclose(splash[~covered], np.repeat(gray[~covered][:, None], 3, 1), atol=1)
    # no detection: all of it gray
    np.testing.assert_allclose(balloon.color_splash(image, mask[..., :0]),
                               np.repeat(gray[..., None], 3, 2), atol=1)


@pytest.mark.sample_commands
def test_readme_commands_run_as_written(balloon, dataset_dir, tmp_path, monkeypatch, capsys):
    """Train from COCO's file (a small-cnn model's weights under Matterport's name; the class
    heads left out), continue from 'last', then splash an image: the file written is the
    splash of the trained model's own detections."""
    import mrcnn.model as modellib

    commands = readme_commands("balloon-sample")
    assert [c[:3] for c in commands] == [["python3", "samples/balloon/balloon.py", "train"]] * 2 \
        + [["python3", "samples/balloon/balloon.py", "splash"]]
    source_args = balloon.build_parser().parse_args(["splash", "--weights=none"] + SMALL)
    config = type("C81", (type(balloon.make_config(source_args, inference=True)),),
                  {"NUM_CLASSES": 81})()
    coco_h5 = str(tmp_path / "mask_rcnn_coco.h5")
    modellib.MaskRCNN("inference", config, str(tmp_path / "src")).keras_model.save_weights(coco_h5)
    monkeypatch.setattr(balloon, "COCO_WEIGHTS_PATH", coco_h5)
    monkeypatch.chdir(tmp_path)
    image_path = str(dataset_dir / "val" / "val_0.jpg")
    logs = str(tmp_path / "logs")
    small = [["--epochs", "1"], ["--epochs", "2"], []]
    for words, extra in zip(commands, small):
        args = [w.replace("/path/to/balloon/dataset", str(dataset_dir))
                .replace("/path/to/image.jpg", image_path) for w in words[2:]]
        result = balloon.main(args + [f"--logs={logs}"] + SMALL + extra)
    out = capsys.readouterr().out
    run, = os.listdir(logs)
    assert sorted(f for f in os.listdir(os.path.join(logs, run)) if f.startswith("mask_rcnn")) \
        == ["mask_rcnn_balloon_0001.h5", "mask_rcnn_balloon_0002.h5"]
    assert "Starting at epoch 1." in out and f"Saved to {result}" in out
    splash = skimage.io.imread(tmp_path / result)
    image = skimage.io.imread(image_path)
    r = modellib.MaskRCNN("inference", balloon.make_config(source_args, inference=True), logs)
    r.load_weights(os.path.join(logs, run, "mask_rcnn_balloon_0002.h5"), by_name=True)
    masks = r.detect([image])[0]["masks"]
    np.testing.assert_array_equal(splash, balloon.color_splash(image, masks))


@pytest.mark.sample_commands
def test_video_splash(balloon, dataset_dir, tmp_path, monkeypatch):
    cv2 = pytest.importorskip("cv2")
    video = str(tmp_path / "in.avi")
    writer = cv2.VideoWriter(video, cv2.VideoWriter_fourcc(*"MJPG"), 5.0, (64, 64))
    frame = skimage.io.imread(dataset_dir / "val" / "val_0.jpg")[..., ::-1]
    for _ in range(3):
        writer.write(np.ascontiguousarray(frame))
    writer.release()
    monkeypatch.chdir(tmp_path)
    name = balloon.main(["splash", "--weights=none", f"--video={video}",
                         f"--logs={tmp_path / 'logs'}"] + SMALL)
    capture = cv2.VideoCapture(str(tmp_path / name))
    frames = 0
    while capture.read()[0]:
        frames += 1
    capture.release()
    assert frames == 3 and not [f for f in os.listdir(tmp_path) if f.startswith(".splash")]


@pytest.mark.sample_commands
def test_command_line_errors_are_messages(balloon, tmp_path, monkeypatch, offline):
    monkeypatch.setattr(balloon, "COCO_WEIGHTS_PATH", str(tmp_path / "mask_rcnn_coco.h5"))
    with pytest.raises(SystemExit, match="train needs --dataset"):
        balloon.main(["train", "--weights=coco"])
    with pytest.raises(SystemExit, match="splash needs --image"):
        balloon.main(["splash", "--weights=last"])
    with pytest.raises(SystemExit, match=r"--dataset=.*via_region_data\.json"):
        balloon.main(["train", "--weights=none", f"--dataset={tmp_path}"] + SMALL)
    with pytest.raises(SystemExit, match=r"--weights=coco: .*mask_rcnn_coco\.h5"):
        balloon.main(["splash", "--weights=coco", "--image=x.png"] + SMALL)
