"""benchmarks/real_nuclei.py and benchmarks/peer_cellpose.py's NumPy parts.

The data come from generated files in the real formats (a uint16 TIFF image
and its label TIFF, inside a zip laid out as the stardist wheel); no
cellpose or torch here (stand-ins of both run peer_cellpose.main's wiring). The smoke
run trains ours only.
"""

import json
import os
import zipfile

import numpy as np
import pytest
import skimage.draw
import skimage.io
from helpers import load_file_module

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# the benchmark's command lines and file parsing: on the TensorFlow pass of CI only (pytest.ini)
pytestmark = pytest.mark.sample_commands


@pytest.fixture(scope="module")
def real_nuclei():
    return load_file_module("real_nuclei", "benchmarks/real_nuclei.py")


@pytest.fixture(scope="module")
def peer_cellpose():
    return load_file_module("peer_cellpose", "benchmarks/peer_cellpose.py")


def _nuclei(size=128, n=14, seed=0):
    """uint16 fluorescence-like image and int32 labels of `n` disjoint ellipses."""
    rng = np.random.default_rng(seed)
    labels = np.zeros((size, size), np.int32)
    k = 0
    while k < n:
        r, c = rng.integers(8, size - 8, 2)
        rr, cc = skimage.draw.ellipse(r, c, rng.integers(4, 8), rng.integers(4, 8),
                                      shape=labels.shape)
        if labels[rr, cc].any():
            continue
        k += 1
        labels[rr, cc] = k
    image = (labels > 0) * 900 + rng.integers(100, 200, labels.shape)
    return image.astype(np.uint16), labels


def _write_pair(folder, size=128, n=14):
    image, labels = _nuclei(size, n)
    os.makedirs(folder, exist_ok=True)
    paths = os.path.join(folder, "img2d.tif"), os.path.join(folder, "mask2d.tif")
    skimage.io.imsave(paths[0], image, check_contrast=False)
    skimage.io.imsave(paths[1], labels.astype(np.uint16), check_contrast=False)
    return paths, image, labels


def test_stardist_files_from_a_wheel_and_a_package_folder(real_nuclei, tmp_path):
    (img, mask), image, labels = _write_pair(str(tmp_path / "src"))
    wheel = tmp_path / "stardist-0.9.2-cp311-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as z:
        z.write(img, real_nuclei.STARDIST_IMAGE)
        z.write(mask, real_nuclei.STARDIST_MASK)
    got = real_nuclei.stardist_files(str(wheel), str(tmp_path / "out"))
    gray, lab = real_nuclei.read_pair(*got)
    np.testing.assert_array_equal(lab, labels)
    # the same files found in an unpacked site-packages folder
    assert real_nuclei.stardist_files(str(tmp_path / "out"), None) == got
    with pytest.raises(SystemExit, match="no stardist/data/images/img2d.tif"):
        real_nuclei.stardist_files(str(tmp_path / "src"), None)
    bad = tmp_path / "bad.whl"
    with zipfile.ZipFile(bad, "w") as z:
        z.writestr("other.txt", "x")
    with pytest.raises(SystemExit, match="not a stardist wheel"):
        real_nuclei.stardist_files(str(bad), str(tmp_path / "out2"))


def test_read_pair_stretches_to_uint8_and_checks_its_input(real_nuclei, tmp_path):
    (img, mask), image, labels = _write_pair(str(tmp_path))
    gray, lab = real_nuclei.read_pair(img, mask)
    assert gray.dtype == np.uint8 and gray.min() == 0 and gray.max() == 255
    expected = np.round((image - image.min()) / (image.max() - image.min()) * 255)
    np.testing.assert_array_equal(gray, expected.astype(np.uint8))
    other = str(tmp_path / "small.tif")
    skimage.io.imsave(other, labels[:64].astype(np.uint16), check_contrast=False)
    with pytest.raises(SystemExit, match=r"labels of its shape, got \(128, 128\) and \(64, 128\)"):
        real_nuclei.read_pair(img, other)
    floats = str(tmp_path / "float.tif")
    skimage.io.imsave(floats, labels.astype(np.float32), check_contrast=False)
    with pytest.raises(SystemExit, match="integer instance labels"):
        real_nuclei.read_pair(img, floats)


def test_tiles_partition_the_image_and_write_sartorius_round_trips(real_nuclei, tmp_path):
    from mrcnn.datasets.sartorius import SartoriusDataset

    image, labels = _nuclei(128, 14)
    gray = (image // 4).astype(np.uint8)
    parts = real_nuclei.tiles(gray, labels, 2)
    assert [p[0] for p in parts] == ["tile00", "tile01", "tile10", "tile11"]
    np.testing.assert_array_equal(np.block([[parts[0][2], parts[1][2]],
                                            [parts[2][2], parts[3][2]]]), labels)
    folder = real_nuclei.write_sartorius(str(tmp_path / "data"), parts)
    ds = SartoriusDataset()
    ds.load_sartorius(folder, class_mode="single")
    ds.prepare()
    by_id = {ds.image_info[i]["id"]: i for i in ds.image_ids}
    for tile_id, tile_image, tile_labels in parts:
        i = by_id[tile_id]
        np.testing.assert_array_equal(ds.load_image(i)[..., 0], tile_image)
        masks, class_ids = ds.load_mask(i)
        values = np.unique(tile_labels[tile_labels > 0])
        assert masks.shape[-1] == values.size and set(class_ids.tolist()) <= {1}
        expected = np.stack([tile_labels == v for v in values], -1)
        # the same masks in the same order (rows are written by increasing label)
        np.testing.assert_array_equal(np.asarray(masks, bool), expected)


def test_instances_of_matches_a_brute_force_loop(peer_cellpose):
    _, labels = _nuclei(96, 9, seed=3)
    labels[labels == 4] = 0                            # a gap in the label values
    instance, pixel, boxes = peer_cellpose.instances_of(labels)
    values = [v for v in np.unique(labels) if v]
    assert boxes.shape == (len(values), 4)
    w = labels.shape[1]
    for i, v in enumerate(values):
        ys, xs = np.nonzero(labels == v)
        np.testing.assert_array_equal(np.sort(pixel[instance == i]), np.sort(ys * w + xs))
        np.testing.assert_array_equal(boxes[i], [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1])
    empty = peer_cellpose.instances_of(np.zeros((5, 6), np.int32))
    assert empty[0].size == 0 and empty[2].shape == (0, 4)


def test_label_image_and_epochs(peer_cellpose):
    item = {"image": np.zeros((4, 5, 3), np.uint8), "ys": np.array([0, 1, 3]),
            "xs": np.array([0, 4, 2]), "instance": np.array([0, 0, 2])}
    expected = np.zeros((4, 5), np.int32)
    expected[0, 0] = expected[1, 4] = 1
    expected[3, 2] = 3
    np.testing.assert_array_equal(peer_cellpose.label_image(item), expected)
    assert peer_cellpose.epochs_for(1200, 3) == 400
    assert peer_cellpose.epochs_for(1201, 3) == 401
    with pytest.raises(ValueError, match="no training images"):
        peer_cellpose.epochs_for(10, 0)


def test_cellpose_style_predictions_are_scored_like_the_other_peer(real_nuclei, peer_cellpose,
                                                                   tmp_path):
    """Label images of the ground truth written as peer_cellpose writes them score 1."""
    (img, mask), _, _ = _write_pair(str(tmp_path / "src"))
    parts = real_nuclei.tiles(*real_nuclei.read_pair(img, mask), 2)
    data = real_nuclei.write_sartorius(str(tmp_path / "data"), parts)
    peer_cell = real_nuclei.load_peer_cell()
    folder = load_file_module("peer_torchvision_cell", "benchmarks/peer_torchvision_cell.py")
    work = str(tmp_path / "work")
    os.makedirs(work)
    settings, val, module, targs = peer_cell.export(
        work, ["--data", data, "--folds", "4", "--fold", "1"] + real_nuclei.SMOKE_TRAIN_ARGV)
    os.makedirs(os.path.join(work, "cellpose"))
    held = {p[0]: p[2] for p in parts}[val.image_info[0]["id"]]
    for index in range(settings["n_val"]):
        with np.load(folder.item_path(work, "val", index)) as f:
            key = str(f["key"])
        instance, pixel, boxes = peer_cellpose.instances_of(held)
        n = boxes.shape[0]
        folder.write_prediction(os.path.join(work, "cellpose", f"{index:06d}.npz"), held.shape,
                                instance, pixel, np.ones(n), np.ones(n, np.int32), boxes, key)
    perfect = peer_cell.score_peer(work, val, module.postprocess_config(val.class_names, 0),
                                   settings["num_classes"], verbose=0, folder="cellpose")
    assert perfect["map_iou"] == pytest.approx(1.0)
    # --min-area drops the ground truth's small instances from the predictions: a lower score
    areas = np.bincount(held.ravel())[1:]
    cut = int(np.median(areas[areas > 0])) + 1
    fewer = peer_cell.score_peer(work, val, module.postprocess_config(val.class_names, cut),
                                 settings["num_classes"], verbose=0, folder="cellpose")
    assert fewer["map_iou"] < 0.9


def _fake_cellpose(monkeypatch, held, calls):
    """torch and cellpose stand-ins: eval returns the held-out labels, with augment=True the
    labels less their largest instance (a worse segmentation to tell the two apart)."""
    import sys
    import types

    torch = types.SimpleNamespace(set_num_threads=lambda n: None, manual_seed=lambda s: None,
                                  __version__="fake")
    worse = held.copy()
    worse[worse == np.argmax(np.bincount(held.ravel())[1:]) + 1] = 0

    class CellposeModel:
        def __init__(self, gpu, pretrained_model, diam_mean, nchan):
            calls.append(("model", pretrained_model))
            self.net = types.SimpleNamespace(diam_labels=types.SimpleNamespace(item=lambda: 12.0))

        def eval(self, x, channels, diameter, augment=False):
            calls.append(("eval", augment, diameter))
            return (worse if augment else held), None, None

    def train_seg(net, save_path, model_name, **kwargs):
        calls.append(("train", kwargs["n_epochs"]))
        path = os.path.join(save_path, "models", model_name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        open(path, "w").close()
        return path, np.array([0.5, 0.4]), None

    cellpose = types.ModuleType("cellpose")
    cellpose.version = "fake"
    cellpose.models = types.SimpleNamespace(CellposeModel=CellposeModel)
    cellpose.train = types.SimpleNamespace(train_seg=train_seg)
    for name, module in (("torch", torch), ("cellpose", cellpose),
                         ("cellpose.models", cellpose.models), ("cellpose.train", cellpose.train)):
        monkeypatch.setitem(sys.modules, name, module)


def test_cellpose_augment_and_eval_only_write_and_score_both_segmentations(
        real_nuclei, peer_cellpose, tmp_path, monkeypatch):
    """--augment segments each held-out tile twice (eval(augment=False / True)) into two
    folders that score apart; --eval-only reuses the saved network without training."""
    (img, mask), _, _ = _write_pair(str(tmp_path / "src"))
    parts = real_nuclei.tiles(*real_nuclei.read_pair(img, mask), 2)
    data = real_nuclei.write_sartorius(str(tmp_path / "data"), parts)
    peer_cell = real_nuclei.load_peer_cell()
    work = str(tmp_path / "work")
    os.makedirs(work)
    settings, val, module, targs = peer_cell.export(
        work, ["--data", data, "--folds", "4", "--fold", "1"] + real_nuclei.SMOKE_TRAIN_ARGV)
    held = {p[0]: p[2] for p in parts}[val.image_info[0]["id"]]
    calls = []
    _fake_cellpose(monkeypatch, held, calls)
    with pytest.raises(SystemExit, match="--eval-only: no trained network at .*cellpose_scratch"):
        peer_cellpose.main(["--work", work, "--eval-only"])

    run = peer_cellpose.main(["--work", work, "--augment", "--threads", "1"])
    assert run["augment"] is True and run["images_seen"] >= settings["images_seen"]
    assert calls[:2] == [("model", False), ("train", run["epochs"])]
    assert [c[1] for c in calls if c[0] == "eval"] == [False, True] * settings["n_val"]
    post = module.postprocess_config(val.class_names, 0)
    plain, augment = (peer_cell.score_peer(work, val, post, settings["num_classes"], verbose=0,
                                           folder=f) for f in ("cellpose", "cellpose_augment"))
    assert plain["map_iou"] == pytest.approx(1.0)
    assert augment["errors"]["missed"] == 1 and augment["map_iou"] < 1.0

    calls.clear()
    again = peer_cellpose.main(["--work", work, "--eval-only"])
    saved = os.path.join(work, "cellpose", "models", "cellpose_scratch")
    assert calls[0] == ("model", saved) and not [c for c in calls if c[0] == "train"]
    assert [c[1] for c in calls if c[0] == "eval"] == [False] * settings["n_val"]
    assert again["train_s"] == run["train_s"] and again["augment"] is False


def test_cellpose_augment_flag_scores_a_second_cellpose_row(real_nuclei, peer_cellpose, tmp_path,
                                                            monkeypatch, capsys):
    """real_nuclei.py --cellpose-augment: peer_cellpose.py is asked for --augment and both of
    its segmentations are scored, each its own row and mean."""
    import skimage.measure

    (img, mask), _, _ = _write_pair(str(tmp_path / "src"))
    asked = []

    def run_in_process(python, work, threads, sgd=False, augment=False):
        asked.append(augment)
        image = np.load(os.path.join(work, "val", "000000.npz"))["image"]
        _fake_cellpose(monkeypatch, skimage.measure.label(peer_cellpose.gray(image) > 128), [])
        return peer_cellpose.main(["--work", work] + (["--augment"] if augment else []))

    monkeypatch.setattr(real_nuclei, "run_cellpose", run_in_process)
    results = real_nuclei.main(["--image", img, "--mask", mask, "--methods", "cellpose",
                                "--peer-python", "unused", "--smoke", "--cellpose-augment",
                                "--work", str(tmp_path / "work"), "--folds-run", "1"])
    assert asked == [True]
    assert [r["method"] for r in results] == ["cellpose fake adamw", "cellpose fake adamw augment"]
    plain, augment = (r["scores"]["map_iou"] for r in results)
    assert plain == pytest.approx(1.0) and augment < plain
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert f"cellpose={plain:.4f}" in last and f"cellpose_augment={augment:.4f}" in last


def test_smoke_run_trains_ours_on_the_tiles(real_nuclei, tmp_path, capsys):
    (img, mask), _, _ = _write_pair(str(tmp_path / "src"), size=128)
    results = real_nuclei.main(["--image", img, "--mask", mask, "--methods", "ours", "--smoke",
                                "--work", str(tmp_path / "work"), "--folds-run", "2"])
    assert [r["fold"] for r in results] == [2] and results[0]["method"] == "mrcnn (ours)"
    assert results[0]["images_seen"] == 4                       # 1 epoch x 2 steps x 2 crops
    assert 0.0 <= results[0]["scores"]["map_iou"] <= 1.0
    saved = json.load(open(tmp_path / "work" / "results.json"))
    assert saved["runs"][0]["held_out"] == results[0]["held_out"]
    # Where the score goes: the held-out tile's objects, missed or matched at IoU 0.5.
    errors = saved["runs"][0]["scores"]["errors"]
    parts = real_nuclei.tiles(*real_nuclei.read_pair(img, mask), 2)
    held = {p[0]: p[2] for p in parts}[results[0]["held_out"]]
    assert errors["n_gt"] == np.unique(held[held > 0]).size
    assert 0 <= errors["missed"] <= errors["n_gt"]
    assert 0 <= errors["false_positives"] <= errors["n_pred"]
    out = capsys.readouterr().out.strip().splitlines()
    assert out[-1].startswith("ours=")
    row = next(line for line in out if line.startswith("mrcnn (ours)"))
    assert f"{errors['missed']}/{errors['n_gt']}" in row.split()


def test_bad_flags_are_named(real_nuclei, tmp_path):
    with pytest.raises(SystemExit, match="unknown .'detectron'."):
        real_nuclei.main(["--methods", "ours,detectron", "--image", "a", "--mask", "b"])
    with pytest.raises(SystemExit, match="--peer-python"):
        real_nuclei.main(["--methods", "cellpose", "--image", "a", "--mask", "b"])
    with pytest.raises(SystemExit, match=r"each fold must lie in \[0, 3\]"):
        real_nuclei.main(["--methods", "ours", "--folds-run", "4", "--image", "a", "--mask", "b"])
    with pytest.raises(SystemExit, match="--image needs --mask"):
        real_nuclei.main(["--methods", "ours", "--image", "a", "--work", str(tmp_path)])


def _peer_has_cellpose():
    python = os.environ.get("PEER_PYTHON")
    if not python:
        return False
    import subprocess
    return subprocess.run([python, "-c", "import cellpose, torchvision"],
                          capture_output=True).returncode == 0


@pytest.mark.slow
@pytest.mark.skipif(not _peer_has_cellpose(),
                    reason="$PEER_PYTHON (a Python with torch, torchvision and cellpose 3) "
                           "is not set")
def test_all_three_methods_run_end_to_end(real_nuclei, tmp_path, capsys):
    (img, mask), _, _ = _write_pair(str(tmp_path / "src"), size=128)
    results = real_nuclei.main(["--image", img, "--mask", mask, "--smoke",
                                "--peer-python", os.environ["PEER_PYTHON"],
                                "--work", str(tmp_path / "work")])
    assert [r["method"].split()[0] for r in results] == ["mrcnn", "torchvision", "cellpose"]
    assert results[2]["images_seen"] >= results[0]["images_seen"]
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last.startswith("ours=") and "torchvision=" in last and "cellpose=" in last


def test_mean_pixel_auto_is_the_training_tiles_mean(real_nuclei, tmp_path):
    (img, mask), _, _ = _write_pair(str(tmp_path / "src"))
    parts = real_nuclei.tiles(*real_nuclei.read_pair(img, mask), 2)
    data = real_nuclei.write_sartorius(str(tmp_path / "data"), parts)
    train = load_file_module("cell_train", "samples/cell/train.py")
    args = train.build_parser().parse_args(["--data", data, "--classes", "single", "--folds",
                                            "4", "--fold", "0", "--mean-pixel", "auto"])
    training, val = train.load_data(args)
    held = val.image_info[0]["id"]
    expected = np.mean([p[1].astype(np.float64) for p in parts if p[0] != held])
    np.testing.assert_allclose(args.mean_pixel, [expected] * 3, rtol=1e-9)
    config = train.make_config(args, training.class_names)[0]
    np.testing.assert_allclose(config.MEAN_PIXEL, [expected] * 3, rtol=1e-9)
    # with --data, auto is the default; an explicit value stays
    default = train.build_parser().parse_args(["--data", data, "--classes", "single",
                                               "--folds", "4", "--fold", "0"])
    train.load_data(default)
    np.testing.assert_allclose(default.mean_pixel, [expected] * 3, rtol=1e-9)
    fixed = train.build_parser().parse_args(["--data", data, "--classes", "single",
                                             "--folds", "4", "--mean-pixel", "128"])
    train.load_data(fixed)
    assert fixed.mean_pixel == (128.0,)


def test_readme_nuclei_command_runs_as_written(real_nuclei, tmp_path, monkeypatch):
    """samples/cell/README.md's nuclei command on a Sartorius-format folder of real-format
    tiles, then small sizes; the run's config.json carries the tiles' mean pixel."""
    from helpers import CELL_SMALL_FLAGS, cell_readme_commands

    (img, mask), _, _ = _write_pair(str(tmp_path / "src"))
    monkeypatch.chdir(tmp_path)
    real_nuclei.write_sartorius("nuclei", real_nuclei.tiles(*real_nuclei.read_pair(img, mask), 2))
    line, = cell_readme_commands("cell-nuclei")
    assert line[:2] == ["python", "samples/cell/train.py"]
    train = load_file_module("cell_train", "samples/cell/train.py")
    small = CELL_SMALL_FLAGS[:CELL_SMALL_FLAGS.index("--anchor-scales")]   # the command's auto
    scores = train.main(line[2:] + small + ["--epochs", "1"])
    assert 0.0 <= scores["map_iou"] <= 1.0
    run, = os.listdir(tmp_path / "logs")
    saved = json.load(open(tmp_path / "logs" / run / "config.json"))
    assert saved["IMAGES_PER_GPU"] == 1
    fitted = saved["RPN_ANCHOR_SCALES"]       # fitted to the tiles' nuclei, recorded
    assert len(fitted) == 5 and fitted != [8, 16, 32, 64, 128]
    # the training tiles of the command's split (CELL_SMALL_FLAGS: 3 folds, fold 0, seed 0)
    from mrcnn.datasets.folds import kfold_split
    parts = {p[0]: p[1] for p in real_nuclei.tiles(*real_nuclei.read_pair(img, mask), 2)}
    ids = sorted(parts)
    training, _ = kfold_split(ids, k=3, fold=0, seed=0, groups=[""] * len(ids))
    expected = np.mean([parts[i].astype(np.float64) for i in training])
    np.testing.assert_allclose(saved["MEAN_PIXEL"], [expected] * 3, rtol=1e-9)
