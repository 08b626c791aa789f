"""samples/nucleus/nucleus.py: Matterport's DSB 2018 sample on a small set in Kaggle's layout.

``stage1_train/<id>/images/<id>.png`` with one PNG per nucleus in ``masks/``, and
``stage1_test/`` without masks. References: hand-made masks and runs, the library's
submission validator, and the split rule written out.
"""

import hashlib
import os

import numpy as np
import pytest
from helpers import readme_commands
from PIL import Image

# No backend op but in the command-line tests (marked sample_commands: their model is the one
# the model tests check on every backend).
pytestmark = pytest.mark.backend_independent

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TRAIN_IDS = [f"{k:02x}" + "ab" * 4 for k in range(6)]
TEST_IDS = ["cc" * 5, "dd" * 5]
SMALL = ["--backbone", "small-cnn", "--image-size", "64", "--steps-per-epoch", "1"]


@pytest.fixture(scope="module")
def nucleus():
    from samples.nucleus import nucleus as module      # Matterport's notebooks' import
    assert module.__file__ == os.path.join(ROOT, "samples", "nucleus", "nucleus.py")
    return module


def write_image(folder, image_id, rng, masks=True):
    (folder / image_id / "images").mkdir(parents=True)
    image = rng.integers(0, 40, (64, 80, 3)).astype(np.uint8)
    if masks:
        (folder / image_id / "masks").mkdir()
        for k in range(3):
            mask = np.zeros((64, 80), np.uint8)
            y, x = 8 + 18 * k, 10 + 20 * k
            mask[y:y + 10, x:x + 12] = 255
            image[mask > 0] = 180
            Image.fromarray(mask).save(folder / image_id / "masks" / f"m{k}.png")
    Image.fromarray(image).save(folder / image_id / "images" / f"{image_id}.png")


@pytest.fixture(scope="module")
def dataset_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("dsb")
    rng = np.random.default_rng(0)
    for image_id in TRAIN_IDS:
        write_image(root / "stage1_train", image_id, rng)
    for image_id in TEST_IDS:
        write_image(root / "stage1_test", image_id, rng, masks=False)
    return root


def test_configs_are_matterports(nucleus):
    config, inference = nucleus.NucleusConfig(), nucleus.NucleusInferenceConfig()
    assert (config.NAME, config.IMAGES_PER_GPU, config.BACKBONE, config.IMAGE_RESIZE_MODE,
            config.IMAGE_MIN_DIM, config.RPN_NMS_THRESHOLD) == ("nucleus", 6, "resnet50",
                                                                "crop", 512, 0.9)
    assert config.STEPS_PER_EPOCH == (657 - 25) // 6 and config.VALIDATION_STEPS == 4
    # Matterport's "pad64" ran each image x2 at its own size; here x2 into a fixed input
    assert (inference.BATCH_SIZE, inference.IMAGE_SCALE, inference.RPN_NMS_THRESHOLD,
            tuple(inference.IMAGE_SHAPE)) == (1, 2.0, 0.7, (1024, 1024, 3))


def test_subsets(nucleus, dataset_dir, monkeypatch):
    def ids(subset):
        dataset = nucleus.NucleusDataset()
        dataset.load_nucleus(str(dataset_dir), subset)
        dataset.prepare()
        return [info["id"] for info in dataset.image_info]

    # one in five of a small folder, the lowest SHA-1 of the id
    expected_val = [min(TRAIN_IDS, key=lambda i: hashlib.sha1(i.encode()).hexdigest())]
    assert ids("val") == expected_val
    assert ids("train") == [i for i in TRAIN_IDS if i not in expected_val]
    assert ids("stage1_train") == TRAIN_IDS and ids("stage1_test") == TEST_IDS
    monkeypatch.setattr(nucleus, "VAL_IMAGE_IDS", TRAIN_IDS[:2])       # Matterport's habit
    assert ids("val") == TRAIN_IDS[:2] and ids("train") == TRAIN_IDS[2:]
    monkeypatch.setattr(nucleus, "VAL_IMAGE_IDS", ["feedbeef"])
    with pytest.raises(ValueError, match="not in .*feedbeef"):
        ids("val")
    with pytest.raises(ValueError, match="subset must be one of"):
        ids("stage3_test")
    with pytest.raises(FileNotFoundError, match="stage2_test"):
        ids("stage2_test")


def test_rle_and_mask_to_rle_by_hand(nucleus):
    mask = np.zeros((3, 3), bool)
    mask[0, 0] = mask[1, 0] = mask[0, 1] = True
    assert nucleus.rle_encode(mask) == "1 2 4 1"           # column-major: pixels 1, 2, 4
    np.testing.assert_array_equal(nucleus.rle_decode("1 2 4 1", (3, 3)), mask)
    a = np.zeros((3, 4), bool)
    a[0:2, 0:2] = True
    b = np.zeros((3, 4), bool)
    b[1:3, 1:3] = True                                     # overlaps a at (1, 1)
    lines = nucleus.mask_to_rle("img", np.stack([a, b], -1), [0.5, 0.9])
    # b scores higher and keeps (1, 1); a loses it: column-major pixels of a are 1, 2, 4 (not 5)
    assert lines.split("\n") == ["img,1 2 4 1", "img,5 2 8 2"]
    assert nucleus.mask_to_rle("img", np.zeros((3, 4, 0), bool), []) == "img,"
    with pytest.raises(ValueError, match=r"\[H, W, N\]"):
        nucleus.mask_to_rle("img", a, [1.0])


@pytest.mark.sample_commands
def test_readme_commands_run_as_written(nucleus, dataset_dir, tmp_path, monkeypatch, capsys):
    import mrcnn.model as modellib
    from mrcnn.inference.submission import validate_submission

    commands = readme_commands("nucleus-matterport")
    assert [c[:3] for c in commands] == [["python3", "samples/nucleus/nucleus.py", "train"]] * 2 \
        + [["python3", "samples/nucleus/nucleus.py", "detect"]]
    source = type("C81", (nucleus.NucleusInferenceConfig,),
                  {"NUM_CLASSES": 81, "BACKBONE": "small-cnn"})()
    coco_h5 = str(tmp_path / "mask_rcnn_coco.h5")
    modellib.MaskRCNN("inference", source, str(tmp_path / "src")).keras_model.save_weights(coco_h5)
    monkeypatch.setattr(nucleus, "COCO_WEIGHTS_PATH", coco_h5)
    monkeypatch.setattr(nucleus, "RESULTS_DIR", str(tmp_path / "results"))
    logs = str(tmp_path / "logs")
    small = [["--epochs", "1,1"], ["--epochs", "1,2"], []]
    for words, extra in zip(commands, small):
        args = [w.replace("/path/to/dataset", str(dataset_dir)) for w in words[2:]]
        submit_dir = nucleus.main(args + [f"--logs={logs}"] + SMALL + extra)
    out = capsys.readouterr().out
    assert "Loaded weights " + coco_h5 + " (left out: " in out
    assert "Train all layers: done (the model has trained 1 epochs)" in out
    run, = os.listdir(logs)
    assert sorted(f for f in os.listdir(os.path.join(logs, run)) if f.startswith("mask_rcnn")) \
        == ["mask_rcnn_nucleus_0001.h5", "mask_rcnn_nucleus_0002.h5"]
    assert sorted(os.listdir(submit_dir)) == sorted([f"{i}.png" for i in TEST_IDS] + ["submit.csv"])
    validate_submission(os.path.join(submit_dir, "submit.csv"),
                        {i: (64, 80) for i in TEST_IDS}, expected_ids=TEST_IDS, order="F")


@pytest.mark.sample_commands
def test_command_line_errors_are_messages(nucleus, dataset_dir, tmp_path, monkeypatch, offline):
    monkeypatch.setattr(nucleus, "COCO_WEIGHTS_PATH", str(tmp_path / "mask_rcnn_coco.h5"))
    with pytest.raises(SystemExit, match="detect needs --subset"):
        nucleus.main(["detect", f"--dataset={dataset_dir}", "--weights=last"])
    with pytest.raises(SystemExit, match=r"--subset=stage2_test: .*stage2_test.* not found"):
        nucleus.main(["detect", f"--dataset={dataset_dir}", "--subset=stage2_test",
                      "--weights=last"])
    with pytest.raises(SystemExit, match=r"--weights=coco: .*mask_rcnn_coco\.h5"):
        nucleus.main(["train", f"--dataset={dataset_dir}", "--weights=coco"] + SMALL)
    with pytest.raises(SystemExit):
        nucleus.main(["train", f"--dataset={dataset_dir}", "--weights=none", "--epochs", "3,2"])
