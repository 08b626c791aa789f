"""benchmarks/peer_cell.py: the exported data, the crop plan and the scoring of peer detections.

No torch here: the peer's file writer and crop builder (benchmarks/peer_torchvision_cell.py)
need only NumPy. The end-to-end run with torchvision is the last test, skipped unless
$PEER_PYTHON names a Python with torch and torchvision.
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from helpers import load_file_module

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# 4 generated images, 2 folds: 2 training, 2 validation images; 2 epochs x 3 steps x 2 crops.
ARGV = ["--synthetic-images", "4", "--folds", "2", "--epochs", "2", "--steps-per-epoch", "3",
        "--images-per-gpu", "2", "--crop-size", "128", "--max-gt-instances", "2"]


_load = load_file_module


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """(peer_cell module, peer module, work folder, settings, val dataset, train module, args)."""
    tmp = tmp_path_factory.mktemp("peer_cell")
    old = os.environ.get("MRCNN_CACHE_DIR")
    os.environ["MRCNN_CACHE_DIR"] = str(tmp / "cache")     # read when train.py is loaded
    try:
        peer_cell = _load("peer_cell", "benchmarks/peer_cell.py")
        peer = _load("peer_torchvision_cell", "benchmarks/peer_torchvision_cell.py")
        work = str(tmp / "work")
        os.makedirs(work)
        settings, val, module, args = peer_cell.export(work, ARGV)
    finally:
        if old is None:
            os.environ.pop("MRCNN_CACHE_DIR")
        else:
            os.environ["MRCNN_CACHE_DIR"] = old
    return peer_cell, peer, work, settings, val, module, args


def _write_ground_truth(peer, work, val, transform=None, score=1.0):
    """The validation ground truth, written as the peer writes its detections.

    Returns the number of ground-truth instances of each image.
    """
    os.makedirs(os.path.join(work, "peer"), exist_ok=True)
    counts = []
    for index, image_id in enumerate(val.image_ids):
        image = val.load_image(image_id)
        masks, class_ids = val.load_mask(image_id)
        masks = np.moveaxis(np.asarray(masks, bool), -1, 0)        # [N, H, W]
        counts.append(len(masks))
        if transform is not None:
            masks, class_ids = transform(masks, class_ids)
        h, w = image.shape[:2]
        nz = np.argwhere(masks)
        boxes = np.zeros((len(masks), 4), np.float32)
        for i, m in enumerate(masks):
            ys, xs = np.nonzero(m)
            if ys.size:
                boxes[i] = (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)
        peer.write_prediction(peer.item_path(work, "peer", index), (h, w), nz[:, 0],
                              nz[:, 1] * w + nz[:, 2], np.full(len(masks), score), class_ids,
                              boxes, str(np.load(peer.item_path(work, "val", index))["key"]))
    return counts


def _with_specks(masks, class_ids):
    """Adds four 3x3 false positives on background pixels (below every minimum area)."""
    background = ~masks.any(0)
    specks = []
    for y, x in np.argwhere(background[1:-1:37, 1:-1:41]) * (37, 41) + 1:
        if background[y - 1:y + 2, x - 1:x + 2].all() and len(specks) < 4:
            speck = np.zeros_like(background)
            speck[y - 1:y + 2, x - 1:x + 2] = True
            specks.append(speck)
    assert len(specks) == 4
    return (np.concatenate([masks, np.stack(specks)]),
            np.concatenate([class_ids, np.full(4, class_ids[0])]))


def test_settings_carry_images_seen_and_ours_values(exported):
    peer_cell, peer, work, settings, val, module, args = exported
    assert settings["images_seen"] == 2 * 3 * 2
    assert settings["steps"] == 6 and settings["batch"] == 2
    assert np.load(os.path.join(work, "plan.npy")).shape == (12, 6)
    assert peer.load_settings(work) == json.loads(json.dumps(settings))
    assert settings["crop_size"] == 128 and settings["max_gt_instances"] == 2
    assert settings["anchor_sizes"][0] == [16, 23] and settings["anchor_ratios_wh"] == [0.5, 1, 2]
    assert settings["detection_min_confidence"] == 0.5
    assert settings["optimizer"]["name"] == "adamw" and settings["optimizer"]["lr"] == 0.002
    assert settings["optimizer"]["warmup_steps"] == 50
    assert settings["optimizer"]["schedule"] == "cosine"
    assert settings["n_val"] == val.num_images == 2
    # the export's backbone (ARGV: small-cnn) has no residual blocks: the peer keeps its init
    assert settings["zero_init_residual"] is False


@pytest.mark.skipif(not os.environ.get("PEER_PYTHON"),
                    reason="$PEER_PYTHON (a Python with torch + torchvision) is not set")
def test_peer_zero_init_residual_makes_blocks_identities():
    """settings["zero_init_residual"] (ours' default for a ResNet from random weights) gives
    the peer's 16 bottlenecks a zero bn3 weight: each block then returns relu(its input)."""
    code = (
        "import sys, torch; sys.path.insert(0, sys.argv[1]); import peer_torchvision_cell as p\n"
        "s = {k: 0 for k in ('rpn_train_anchors_per_image', 'pre_nms_limit', "
        "'post_nms_rois_training', 'post_nms_rois_inference', 'train_rois_per_image', "
        "'detection_max_instances')}\n"
        "s.update(anchor_sizes=[[32]] * 5, anchor_ratios_wh=[1.0], crop_size=64, num_classes=2, "
        "image_mean=[0.5] * 3, image_std=[0.2] * 3, rpn_nms_threshold=0.7, "
        "roi_positive_ratio=0.33, detection_min_confidence=0.5, detection_nms_threshold=0.3)\n"
        "for zero in (False, True):\n"
        "    torch.manual_seed(0); m = p.build_model(dict(s, zero_init_residual=zero)).eval()\n"
        "    x = torch.rand(1, 256, 8, 8); body = m.backbone.body\n"
        "    zeros = sum(int(b.bn3.weight.abs().sum() == 0) for l in (body.layer1, body.layer2,"
        " body.layer3, body.layer4) for b in l)\n"
        "    print(zeros, float((body.layer1[1](x) - torch.relu(x)).abs().max()))\n")
    out = subprocess.run([os.environ["PEER_PYTHON"], "-c", code, os.path.join(ROOT, "benchmarks")],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-3000:]
    plain, zeroed = [line.split() for line in out.stdout.split("\n")[-3:-1]]
    assert plain[0] == "0" and float(plain[1]) > 1e-3
    assert zeroed[0] == "16" and float(zeroed[1]) == 0.0


def test_peer_crops_are_ours(exported):
    """The peer's crops, classes and boxes equal our DataGenerator's batches (epochs 0 and 1)."""
    from mrcnn.data.boxes import denorm_boxes
    from mrcnn.data.generator import DataGenerator

    peer_cell, peer, work, settings, val, module, args = exported
    train, _ = module.load_data(args)
    config, _ = module.make_config(args, train.class_names)
    plan = np.load(os.path.join(work, "plan.npy"))
    items = {i: peer.load_train_item(peer.item_path(work, "train", i)) for i in range(2)}
    gen = DataGenerator(train, config, seed=args.seed, steps=config.STEPS_PER_EPOCH)
    kept_fewer = False
    for epoch, step in ((0, 0), (0, 2), (1, 1)):
        gen.epoch = epoch
        batch = gen[step]
        for row in range(2):
            index, y, x, *flips = plan[(epoch * 3 + step) * 2 + row]
            image, boxes, class_ids, masks = peer.training_sample(
                items[int(index)], int(y), int(x), 128, 2, *flips)
            np.testing.assert_array_equal(batch["input_image"][row] + config.MEAN_PIXEL, image)
            n = int((batch["input_gt_class_ids"][row] > 0).sum())
            np.testing.assert_array_equal(batch["input_gt_class_ids"][row, :n], class_ids)
            np.testing.assert_array_equal(
                denorm_boxes(batch["input_gt_boxes"][row, :n], (128, 128)), boxes)
            assert masks.shape == (n, 128, 128) and masks.any((1, 2)).all()
            everything = peer.training_sample(items[int(index)], int(y), int(x), 128, 10**6)
            kept_fewer |= everything[2].size > n
    assert kept_fewer     # MAX_GT_INSTANCES took effect somewhere


def test_ground_truth_as_peer_detections_scores_one(exported):
    peer_cell, peer, work, settings, val, module, args = exported
    _write_ground_truth(peer, work, val)
    scores = peer_cell.score_peer(work, val, None, settings["num_classes"], verbose=0)
    assert scores["map_iou"] == pytest.approx(1.0, abs=1e-6)
    assert all(v == pytest.approx(1.0, abs=1e-6) for v in scores["map_iou_per_class"].values())
    # ours' post-processing (overlaps removed, cells under the minimum area dropped) costs
    # even perfect masks a little on this data
    post = module.postprocess_config(val.class_names)
    assert 0.95 < peer_cell.score_peer(work, val, post, settings["num_classes"],
                                       verbose=0)["map_iou"] < 1.0


def test_ours_post_processing_is_applied(exported):
    peer_cell, peer, work, settings, val, module, args = exported
    post = module.postprocess_config(val.class_names)
    num_classes = settings["num_classes"]

    _write_ground_truth(peer, work, val, score=0.4)           # under min_score 0.5
    assert peer_cell.score_peer(work, val, None, num_classes, verbose=0)["map_iou"] == \
        pytest.approx(1.0, abs=1e-6)
    assert peer_cell.score_peer(work, val, post, num_classes, verbose=0)["map_iou"] == 0.0

    _write_ground_truth(peer, work, val)
    clean = peer_cell.score_peer(work, val, post, num_classes, verbose=0)["map_iou"]
    _write_ground_truth(peer, work, val, _with_specks)        # + 4 false positives per image
    assert peer_cell.score_peer(work, val, None, num_classes, verbose=0)["map_iou"] < 0.97
    assert peer_cell.score_peer(work, val, post, num_classes, verbose=0)["map_iou"] == \
        pytest.approx(clean, abs=1e-9)      # removed by the minimum area


def test_worse_detections_score_lower(exported):
    peer_cell, peer, work, settings, val, module, args = exported
    num_classes = settings["num_classes"]

    _write_ground_truth(peer, work, val, lambda m, c: (m[:0], c[:0]))       # nothing found
    assert peer_cell.score_peer(work, val, None, num_classes, verbose=0)["map_iou"] == 0.0

    # every other cell found exactly: TP / (TP + FN) = ceil(n / 2) / n at every threshold
    counts = _write_ground_truth(peer, work, val, lambda m, c: (m[::2], c[::2]))
    half = peer_cell.score_peer(work, val, None, num_classes, verbose=0)["map_iou"]
    assert half == pytest.approx(np.mean([-(-n // 2) / n for n in counts]), abs=1e-9)

    _write_ground_truth(peer, work, val, lambda m, c: (np.roll(m, 6, axis=2), c))  # shifted
    shifted = peer_cell.score_peer(work, val, None, num_classes, verbose=0)["map_iou"]
    assert 0.0 < shifted < 0.9


def test_bad_inputs_raise_clear_errors(exported, tmp_path):
    peer_cell, peer, work, settings, val, module, args = exported
    with pytest.raises(FileNotFoundError, match="does not exist"):
        peer.load_settings(str(tmp_path / "missing"))
    with pytest.raises(FileNotFoundError, match="settings.json is missing"):
        peer.load_settings(str(tmp_path))
    _write_ground_truth(peer, work, val)
    os.remove(peer.item_path(work, "peer", 1))
    with pytest.raises(FileNotFoundError, match="validation image 1"):
        peer_cell.score_peer(work, val, None, settings["num_classes"], verbose=0)
    with pytest.raises(SystemExit, match="image-mode pad"):
        peer_cell.export(str(tmp_path), ARGV + ["--image-mode", "pad"], train_module=module)
    script = os.path.join(work, "failing_python.sh")     # a "Python" that fails
    with open(script, "w") as f:
        f.write("#!/bin/sh\necho 'boom: no torch' >&2\nexit 3\n")
    os.chmod(script, 0o755)
    with pytest.raises(SystemExit, match="exit 3(.|\\n)*boom: no torch"):
        peer_cell.run_peer(script, work)


def test_learning_rate_follows_ours():
    from mrcnn.training.schedule import WarmupDecay

    peer = _load("peer_torchvision_cell", "benchmarks/peer_torchvision_cell.py")
    opt = {"lr": 0.002, "warmup_steps": 50, "schedule": "cosine", "final_fraction": 0.01,
           "total_steps": 420, "decay_steps": [], "gamma": 0.1}
    ours = WarmupDecay(0.002, warmup_steps=50, total_steps=420, decay="cosine")
    for step in (0, 10, 49, 50, 200, 419, 500):
        assert peer.learning_rate(step, opt) == pytest.approx(ours.value(step), rel=1e-5)


@pytest.mark.slow
@pytest.mark.skipif(not os.environ.get("PEER_PYTHON"),
                    reason="$PEER_PYTHON (a Python with torch + torchvision) is not set")
def test_peer_runs_end_to_end(tmp_path):
    out = subprocess.run([sys.executable, os.path.join(ROOT, "benchmarks", "peer_cell.py"),
                          "--smoke", "--skip-ours", "--work", str(tmp_path)],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "peer_map_iou=" in out.stdout.splitlines()[-1]
