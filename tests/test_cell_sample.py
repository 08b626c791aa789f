"""samples/cell: train on the embedded synthetic data, predict, validate the submission."""

import csv
import importlib.util
import os
import shutil
import tempfile
import types

import pytest
from helpers import load_file_module, load_sample_script

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# samples/cell's command lines (train, predict, paste): on the TensorFlow pass of CI only (pytest.ini)
pytestmark = pytest.mark.sample_commands


load_script = load_sample_script


@pytest.mark.slow
def test_train_then_predict_writes_valid_submission(tmp_path, monkeypatch):
    monkeypatch.setenv("MRCNN_CACHE_DIR", str(tmp_path / "cache"))
    train = load_script("train")
    model_dir = tmp_path / "logs"
    scores = train.main(["--epochs", "1", "--steps-per-epoch", "2", "--validation-steps", "1",
                         "--synthetic-images", "6", "--folds", "3", "--model-dir", str(model_dir)])
    assert 0.0 <= scores["map_iou"] <= 1.0
    run = [d for d in os.listdir(model_dir)][0]
    files = os.listdir(model_dir / run)
    assert "mask_rcnn_cell_0001.h5" in files and "config.json" in files

    # benchmarks/mask_paste.py scores the run's validation fold with both mask pastes
    paste = load_file_module("benchmark_mask_paste", "benchmarks/mask_paste.py")
    pasted = paste.main([str(model_dir / run), "--", "--synthetic-images", "6", "--folds", "3"])
    assert set(pasted[str(model_dir / run)]) == {"centers", "grid"}
    assert all(0.0 <= v <= 1.0 for v in pasted[str(model_dir / run)].values())
    with pytest.raises(SystemExit, match="not a folder"):
        paste.main([str(tmp_path / "no-such-run")])

    images = tmp_path / "test"
    shutil.copytree(tmp_path / "cache" / "synthetic_sartorius" / "train", images)
    predict = load_script("predict")
    out = tmp_path / "submission.csv"
    predict.main([str(images), "--model-dir", str(model_dir), "--out", str(out),
                  "--limit", "2", "--min-score", "0.0", "--overlays", str(tmp_path / "ovl")])
    rows = list(csv.reader(open(out)))
    assert rows[0] == ["id", "predicted"]
    ids = sorted(os.path.splitext(f)[0] for f in os.listdir(images))[:2]
    assert sorted({r[0] for r in rows[1:]}) == ids  # every image has at least one row
    assert len(os.listdir(tmp_path / "ovl")) == 2

    # resume: --weights last continues after epoch 1
    scores = train.main(["--epochs", "2", "--steps-per-epoch", "1", "--validation-steps", "1",
                         "--synthetic-images", "6", "--folds", "3", "--model-dir", str(model_dir),
                         "--weights", "last"])
    runs = sorted(os.listdir(model_dir))
    assert "mask_rcnn_cell_0002.h5" in os.listdir(model_dir / runs[0])


@pytest.mark.slow
def test_nucleus_sample_runs_on_embedded_dsb_layout(tmp_path, monkeypatch):
    monkeypatch.setenv("MRCNN_CACHE_DIR", str(tmp_path / "cache"))
    path = os.path.join(ROOT, "samples", "nucleus", "train.py")
    spec = importlib.util.spec_from_file_location("nucleus_train", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    scores = module.main(["--epochs", "1", "--steps-per-epoch", "1", "--validation-steps", "1",
                          "--synthetic-images", "4", "--folds", "2", "--overlaps", "nested",
                          "--model-dir", str(tmp_path / "logs")])
    assert 0.0 <= scores["map_iou"] <= 1.0 and scores["n_images"] == 2
    root = tmp_path / "cache" / "synthetic_nuclei"
    ids = sorted(d for d in os.listdir(root) if not d.startswith("."))
    assert len(ids) == 4
    assert os.listdir(root / ids[0] / "masks")


def test_anchor_scales_flag():
    train = load_script("train")
    assert train.parse_anchor_scales("16:23,32:45,64:91,128:181,256:362") == (
        (16, 23), (32, 45), (64, 91), (128, 181), (256, 362))
    assert train.parse_anchor_scales("8,16,32,64,128") == (8, 16, 32, 64, 128)
    assert train.parse_anchor_scales(None) == train.CellConfig.RPN_ANCHOR_SCALES
    with pytest.raises(SystemExit, match="16:x"):
        train.parse_anchor_scales("16:x,32")


# ---------------------------------------------------------------- predict.py: nothing lost
def _png(path, seed=0, size=64):
    import numpy as np
    import skimage.io

    rng = np.random.default_rng(seed)
    skimage.io.imsave(str(path), rng.integers(0, 256, (size, size), dtype=np.uint8),
                      check_contrast=False)
    return path


def _test_images(folder, good=3):
    folder.mkdir()
    for i in range(good):
        _png(folder / f"img{i}.png", seed=i)
    return folder


def _no_model(predict, monkeypatch):
    """Make loading a model fail the test: the checks must come before it."""
    def load_models(args):
        raise AssertionError("a model was loaded before the inputs were checked")
    monkeypatch.setattr(predict, "load_models", load_models)


def test_predict_checks_a_missing_out_folder_before_loading_a_model(tmp_path, monkeypatch):
    predict = load_script("predict")
    _no_model(predict, monkeypatch)
    images = _test_images(tmp_path / "test")
    out = tmp_path / "missing" / "submission.csv"
    with pytest.raises(FileNotFoundError, match=f"--out '{out}': its folder '{out.parent}' "
                                                f"does not exist"):
        predict.main([str(images), "--out", str(out)])
    with pytest.raises(IsADirectoryError, match=f"--out '{images}' is a folder"):
        predict.main([str(images), "--out", str(images)])


def _unwritable_folder(tmp_path):
    """A folder this process cannot create files in, or None."""
    folder = tmp_path / "readonly"
    folder.mkdir()
    folder.chmod(0o555)
    candidates = [str(folder), "/sys"]        # root ignores permission bits; /sys refuses it
    for candidate in candidates:
        try:
            fd, probe = tempfile.mkstemp(dir=candidate)
        except OSError:
            return candidate
        os.close(fd)
        os.remove(probe)
    return None


def test_predict_checks_an_unwritable_out_before_loading_a_model(tmp_path, monkeypatch):
    folder = _unwritable_folder(tmp_path)
    if folder is None:
        pytest.skip("no unwritable folder here")
    predict = load_script("predict")
    _no_model(predict, monkeypatch)
    images = _test_images(tmp_path / "test")
    out = os.path.join(folder, "submission.csv")
    # before: a PermissionError naming a temp file, after every image was predicted
    with pytest.raises(OSError) as info:
        predict.main([str(images), "--out", out])
    message = str(info.value)
    assert f"--out {out!r}: cannot write in its folder {folder!r}" in message
    assert ".submission-" not in message and ".write-check-" not in message
    with pytest.raises(OSError, match=f"--overlays {folder!r}: cannot write in it"):
        predict.main([str(images), "--out", str(tmp_path / "s.csv"), "--overlays", folder])


def test_predict_lists_every_unreadable_image_before_loading_a_model(tmp_path, monkeypatch):
    predict = load_script("predict")
    _no_model(predict, monkeypatch)
    images = _test_images(tmp_path / "test", good=3)
    (images / "garbage.png").write_bytes(b"not an image")
    (images / "empty.png").write_bytes(b"")
    with pytest.raises(ValueError) as info:
        predict.main([str(images), "--out", str(tmp_path / "submission.csv")])
    lines = str(info.value).splitlines()
    assert lines[0] == (f"2 of 5 images in {images} cannot be read; fix or remove them, or pass "
                        f"--skip-bad to write the submission without them (each gets one row "
                        f"with an empty prediction):")
    assert [line.split(": ")[0].strip() for line in lines[1:]] == [
        str(images / "empty.png"), str(images / "garbage.png")]
    assert "cannot identify image file" in lines[1]
    assert not (tmp_path / "submission.csv").exists()
    # two files, one id: the submission could not tell them apart
    _png(images / "img0.tif")
    with pytest.raises(ValueError, match="both give the image id 'img0'"):
        predict.main([str(images), "--out", str(tmp_path / "submission.csv"), "--skip-bad"])


def _tiny_run(model_dir):
    """A run folder with config.json and a checkpoint of an untrained small model."""
    from model_helpers import make_config

    import mrcnn.model as modellib
    from mrcnn.config import save_config

    config = make_config(NAME="cell", IMAGES_PER_GPU=1)
    run = model_dir / "cell20240101T0000"
    run.mkdir(parents=True)
    model = modellib.MaskRCNN("inference", config, str(model_dir))
    model.keras_model.save_weights(str(run / "mask_rcnn_cell_0001.h5"))
    save_config(config, str(run / "config.json"))
    return run / "mask_rcnn_cell_0001.h5"


def test_predict_skip_bad_writes_every_other_image_and_reports(tmp_path, capsys):
    predict = load_script("predict")
    weights = _tiny_run(tmp_path / "logs")
    images = _test_images(tmp_path / "test", good=3)
    data = (images / "img1.png").read_bytes()
    (images / "img1.png").write_bytes(data[:len(data) // 2])   # header fine, pixels truncated
    out = tmp_path / "submission.csv"
    argv = [str(images), "--weights", str(weights), "--out", str(out), "--min-score", "0.0"]
    with pytest.raises(ValueError, match=f"cannot decode image '{images / 'img1.png'}' "
                                         f".*image file is truncated.*pass --skip-bad"):
        predict.main(argv)                         # default: stop at the bad image
    assert not out.exists()

    (images / "garbage.png").write_bytes(b"not an image")      # and one with a bad header
    assert predict.main(argv + ["--skip-bad"]) == str(out)
    rows = list(csv.reader(open(out)))
    assert rows[0] == ["id", "predicted"]
    by_id = {}
    for image_id, rle in rows[1:]:
        by_id.setdefault(image_id, []).append(rle)
    assert sorted(by_id) == ["garbage", "img0", "img1", "img2"]
    assert by_id["garbage"] == [""] and by_id["img1"] == [""]          # the empty row
    report = capsys.readouterr().out
    assert (f"skipped 2 of 4 images (--skip-bad); each has one row with an empty prediction "
            f"in {out}:") in report
    assert f"  {images / 'garbage.png'}: ValueError: image 'garbage': cannot read" in report
    assert f"  {images / 'img1.png'}: cannot decode image" in report


def test_predict_keeps_the_rows_when_out_fails_at_the_end(tmp_path, monkeypatch):
    predict = load_script("predict")
    weights = _tiny_run(tmp_path / "logs")
    images = _test_images(tmp_path / "test", good=2)
    out = tmp_path / "gone" / "submission.csv"
    out.parent.mkdir()
    real_load = predict.load_models

    def load_then_lose_the_folder(args):        # e.g. a cleanup job during a long run
        models = real_load(args)
        shutil.rmtree(out.parent)
        return models

    monkeypatch.setattr(predict, "load_models", load_then_lose_the_folder)
    with pytest.raises(OSError) as info:
        predict.main([str(images), "--weights", str(weights), "--out", str(out),
                      "--min-score", "0.0"])
    message = str(info.value)
    assert message.startswith(f"cannot write --out {str(out)!r} (directory of the submission "
                              f"does not exist")
    rescue = message.split("rows were saved to ")[1].split("'")[1]
    rows = list(csv.reader(open(rescue)))
    assert {r[0] for r in rows[1:]} == {"img0", "img1"}
    os.remove(rescue)


def test_predict_bit_depth_flag_converts_16_bit_images_as_told(tmp_path):
    import numpy as np
    import skimage.io

    predict = load_script("predict")
    path = str(tmp_path / "a.png")
    values = np.array([[0, 1000, 2000, 4095]], np.uint16).repeat(2, axis=0)
    skimage.io.imsave(path, values, check_contrast=False)
    twelve = predict.read_image(path, predict.build_parser().parse_args(
        ["x", "--bit-depth", "12"]).bit_depth)
    np.testing.assert_array_equal(twelve[0, :, 0], np.rint(values[0].astype(float) * 255 / 4095))
    full = predict.read_image(path)                         # default: the dtype's range
    np.testing.assert_array_equal(full[0, :, 0], np.rint(values[0].astype(float) * 255 / 65535))
    with pytest.raises(SystemExit):
        predict.build_parser().parse_args(["x", "--bit-depth", "7"])


def test_predict_last_skips_a_damaged_newest_checkpoint(tmp_path):
    import shutil as sh

    import h5py

    predict = load_script("predict")
    good = _tiny_run(tmp_path / "logs")
    newest = good.parent / "mask_rcnn_cell_0002.h5"
    sh.copy(good, newest)
    with h5py.File(newest, "r+") as f:                 # flip values inside one weight array
        name = f.attrs["layer_names"][0].decode()
        weight = f[name].attrs["weight_names"][0].decode()
        f[name][weight][...] = f[name][weight][()] + 1.0
    images = _test_images(tmp_path / "test", good=1)
    args = predict.build_parser().parse_args([str(images), "--model-dir", str(tmp_path / "logs")])
    with pytest.warns(RuntimeWarning, match="skipping checkpoint .*mask_rcnn_cell_0002.h5"):
        models = predict.load_models(args)
    assert len(models) == 1 and models[0].epoch == 1      # the good one before it
    newest.write_bytes(b"")
    good.write_bytes(good.read_bytes()[:1000])            # every checkpoint damaged
    with pytest.raises(ValueError, match=r"(?s)no usable checkpoint under "
                                         r".*mask_rcnn_cell_0002\.h5.*mask_rcnn_cell_0001\.h5"):
        with pytest.warns(RuntimeWarning):
            predict.load_models(args)


# ------------------------------------- predict.py: inference settings over the training config
def _scored_run(model_dir, **settings):
    """A run whose model scores every detection 0.35 (class 1, astro) with mask probability
    0.88 everywhere in its box, trained with DETECTION_MIN_CONFIDENCE 0.5."""
    from model_helpers import confident_heads, make_config

    import mrcnn.model as modellib
    from mrcnn.config import save_config

    config = make_config(NAME="cell", IMAGES_PER_GPU=1, DETECTION_MIN_CONFIDENCE=0.5,
                         **settings)
    run = model_dir / "cell20240101T0000"
    run.mkdir(parents=True)
    model = modellib.MaskRCNN("inference", config, str(model_dir))
    confident_heads(model, class_id=1, score=0.35, mask_probability=0.88)
    model.keras_model.save_weights(str(run / "mask_rcnn_cell_0001.h5"))
    save_config(config, str(run / "config.json"))
    return run / "mask_rcnn_cell_0001.h5"


def _predicted(predict, argv):
    """{image id: number of instances} of a predict.main run."""
    out = argv[argv.index("--out") + 1]
    predict.main(argv)
    counts = {}
    for image_id, rle in list(csv.reader(open(out)))[1:]:
        counts[image_id] = counts.get(image_id, 0) + bool(rle)
    return counts


def test_predict_min_score_below_the_trained_threshold_and_mask_threshold(tmp_path):
    predict = load_script("predict")
    weights = _scored_run(tmp_path / "logs")
    images = _test_images(tmp_path / "test", good=2)
    base = [str(images), "--weights", str(weights), "--out", str(tmp_path / "s.csv"),
            "--min-area", "0"]
    # the trained model drops the 0.35 detections in its graph; --min-score 0.2 builds the
    # inference model with DETECTION_MIN_CONFIDENCE 0.2, so they appear
    assert set(_predicted(predict, base + ["--min-score", "0.5"]).values()) == {0}
    low = _predicted(predict, base + ["--min-score", "0.2"])
    assert sorted(low) == ["img0", "img1"] and min(low.values()) > 0
    args = predict.build_parser().parse_args(base + ["--min-score", "astro=0.6,cort=0.2"])
    model, = predict.load_models(args)
    assert model.config.DETECTION_MIN_CONFIDENCE == 0.2
    assert model.config.DETECTION_MASK_THRESHOLD == 0.5            # masks at 0.5 come out...
    # ... per class: astro (the 0.35 class) keeps 0.6 -> nothing; classes not named keep the
    # trained 0.5 -> nothing; astro=0.3 -> the detections
    assert set(_predicted(predict, base + ["--min-score", "astro=0.6,cort=0.2"]).values()) == {0}
    assert set(_predicted(predict, base + ["--min-score", "cort=0.2"]).values()) == {0}
    assert _predicted(predict, base + ["--min-score", "astro=0.3"]) == low
    with pytest.raises(ValueError, match=r"--min-score: unknown class 'neuron'"):
        predict.main(base + ["--min-score", "neuron=0.3"])
    # --mask-threshold acts on the mask probabilities (0.88 inside each box)
    assert _predicted(predict, base + ["--min-score", "0.2", "--mask-threshold", "0.85"]) == low
    assert set(_predicted(predict, base + ["--min-score", "0.2", "--mask-threshold",
                                           "0.9"]).values()) == {0}


def test_predict_tta_sets_on_non_square_images(tmp_path, capsys):
    import numpy as np
    import skimage.io

    predict = load_script("predict")
    weights = _scored_run(tmp_path / "logs", IMAGE_RESIZE_MODE="none", IMAGE_SHAPE=[64, 64, 3])
    images = tmp_path / "test"
    images.mkdir()
    rng = np.random.default_rng(0)
    for i in range(2):
        skimage.io.imsave(str(images / f"img{i}.png"),
                          rng.integers(0, 256, (40, 64), dtype=np.uint8), check_contrast=False)
    out = tmp_path / "s.csv"
    base = [str(images), "--weights", str(weights), "--out", str(out), "--min-score", "0.2",
            "--min-area", "0"]
    parse = predict.build_parser().parse_args
    assert parse(base + ["--tta"]).tta == "flips"                   # --tta alone: flips
    assert parse(base).tta is None
    assert parse(base + ["--tta", "none,lr,rot90-s1.25"]).tta == ["none", "lr", "rot90-s1.25"]
    with pytest.raises(SystemExit):
        parse(base + ["--tta", "fancy"])
    assert parse(base + ["--mask-threshold", "0.45"]).mask_threshold == 0.45
    for bad in ("0", "1.5", "half"):
        with pytest.raises(SystemExit):
            parse(base + ["--mask-threshold", bad])
        assert f"expected a probability in (0, 1], got '{bad}'" in capsys.readouterr().err
    # turned 40x64 images are 64x40, scaled ones up to 50x80: each runs in an input of its
    # own size (fitted_input), so the model input only holds the 40x64 images
    args = parse(base + ["--tta", "dihedral+scales"])
    args.image_sizes = [(40, 64)]
    config, trained = predict.inference_config(str(weights.parent / "config.json"), args)
    assert list(trained.IMAGE_SHAPE[:2]) == [64, 64]
    assert list(config.IMAGE_SHAPE[:2]) == [64, 64] and config.IMAGE_RESIZE_MODE == "none"
    args.image_sizes = [(40, 100)]
    config, _ = predict.inference_config(str(weights.parent / "config.json"), args)
    assert list(config.IMAGE_SHAPE[:2]) == [64, 128]             # a wider image: it grows
    # one variant merged is the plain prediction, row for row
    plain = tmp_path / "plain.csv"
    predict.main(base[:4] + [str(plain)] + base[5:])
    predict.main(base + ["--tta", "none"])
    assert open(out).read() == open(plain).read()
    # images of two sizes: the model input holds the 40x100 one (64x128), and the 40x64 ones
    # still run in a 64x64 input, plain as with TTA (the same rows as alone above)
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    for name in ("img0.png", "img1.png"):
        (mixed / name).write_bytes((images / name).read_bytes())
    skimage.io.imsave(str(mixed / "wide.png"), rng.integers(0, 256, (40, 100), dtype=np.uint8),
                      check_contrast=False)
    wide = [str(mixed)] + base[1:4] + [str(tmp_path / "mixed.csv")] + base[5:]
    predict.main(wide)
    rows = open(tmp_path / "mixed.csv").read()
    assert [r for r in rows.splitlines() if not r.startswith("wide")] == \
        open(plain).read().splitlines()
    wide[4] = str(tmp_path / "mixed_tta.csv")
    predict.main(wide + ["--tta", "none"])
    assert open(tmp_path / "mixed_tta.csv").read() == rows
    # this untrained model's boxes seldom repeat under turns: with the default votes (4 of
    # the 8 runs) few objects stay; with --tta-votes 1 every object found in a run does,
    # scored 0.35 * votes / 8 (a run that missed it counts 0; >= 0.044): the objects of more
    # votes score higher and keep their pixels, so each image keeps them and gets more
    low = base + ["--min-score", "0.04", "--tta", "dihedral"]
    default = _predicted(predict, low)
    counts = _predicted(predict, low + ["--tta-votes", "1"])
    assert sorted(counts) == ["img0", "img1"]
    assert all(counts[i] >= default[i] for i in counts)
    assert sum(counts.values()) > sum(default.values()) + 10
    with pytest.raises(ValueError, match=r"--tta-votes must be between 1 and 8 \(the runs per "
                                         r"image: 8 TTA variants x 1 checkpoints\), got 9"):
        predict.main(base + ["--tta", "dihedral", "--tta-votes", "9"])


def _readme_blocks(marker, language):
    """The first ```language block after <!-- marker --> in samples/cell/README.md."""
    import re

    text = open(os.path.join(os.path.dirname(__file__), "..", "samples", "cell", "README.md"),
                encoding="utf-8").read()
    assert f"<!-- {marker} -->" in text, f"samples/cell/README.md lost <!-- {marker} -->"
    block = text.split(f"<!-- {marker} -->", 1)[1]
    return re.search(rf"```{language}\n(.*?)```", block, re.S).group(1)


def test_readme_tta_commands_run_as_written(tmp_path, monkeypatch):
    import shlex

    predict = load_script("predict")
    monkeypatch.chdir(tmp_path)
    _scored_run(tmp_path / "logs")                      # what --weights last finds in ./logs
    (tmp_path / "data").mkdir()
    _test_images(tmp_path / "data" / "test", good=2)
    monkeypatch.setenv("DATA", str(tmp_path / "data"))
    lines = [line for line in _readme_blocks("cell-tta", "bash").splitlines() if line.strip()]
    assert len(lines) == 2
    for line in lines:
        argv = [os.path.expandvars(a) for a in shlex.split(line)]
        assert argv[:2] == ["python", "samples/cell/predict.py"]
        os.remove("submission.csv") if os.path.exists("submission.csv") else None
        predict.main(argv[2:])
        rows = list(csv.reader(open("submission.csv")))
        assert rows[0] == ["id", "predicted"] and {r[0] for r in rows[1:]} == {"img0", "img1"}


def test_readme_tune_block_runs_as_written(tmp_path, monkeypatch):
    from model_helpers import shapes

    monkeypatch.chdir(tmp_path)
    weights = _scored_run(tmp_path / "logs")
    val = shapes(2, seed=5)
    namespace = {"RUN": str(weights.parent), "val": val}
    exec(compile(_readme_blocks("cell-tune", "python"), "samples/cell/README.md", "exec"),
         namespace)
    best, table = namespace["best"], namespace["table"]
    assert namespace["model"].config.DETECTION_MIN_CONFIDENCE == 0.2          # the override
    assert len(table) == 18 and best.mask_threshold in (0.4, 0.5, 0.6)
    assert {row["overlap_order"] for row in table} == {"score", "nested"}
    assert best.min_score == table[0]["min_score"] and 0.0 <= table[0]["score"] <= 1.0
    first = namespace["preds"][0]                  # merged TTA results carry the probabilities
    assert first["soft_masks"].count == first["masks"].count and first["masks"].shape == (64, 64)


def test_predict_majority_class_and_overlaps_flags_reach_the_postprocessing(tmp_path,
                                                                            monkeypatch):
    predict = load_script("predict")
    weights = _scored_run(tmp_path / "logs")
    images = _test_images(tmp_path / "test", good=1)
    seen = []
    real = predict.PostprocessConfig

    def spy(**kwargs):
        seen.append((kwargs.get("majority_class"), kwargs.get("overlap_order")))
        return real(**kwargs)

    monkeypatch.setattr(predict, "PostprocessConfig", spy)
    base = [str(images), "--weights", str(weights), "--out", str(tmp_path / "s.csv"),
            "--min-score", "0.2", "--min-area", "0"]
    with_flag = _predicted(predict, base + ["--majority-class", "--overlaps", "nested"])
    without = _predicted(predict, base)
    assert seen == [(True, "nested"), (False, "score")]
    # every detection of this model is class 1 already: relabelling changes nothing
    assert with_flag == without and min(with_flag.values()) > 0


# ------------------------------- train.py: schedule, instances, augmentation, init vs resume
CELL_CLASSES = ["BG", "astro", "cort", "shsy5y"]


def test_precision_flag_sets_both_configs():
    """--precision names Config.MIXED_PRECISION (float32 is None, turning off the "auto" that
    picks bfloat16 on CPUs with fast bfloat16); --mixed-precision keeps its meaning and
    contradicting float32 is refused."""
    train = load_script("train")
    parse = train.build_parser().parse_args
    got = {}
    for flags in ([], ["--precision", "float32"], ["--precision", "bfloat16"],
                  ["--precision", "float16"], ["--precision", "auto"],
                  ["--precision", "bfloat16", "--mixed-precision"]):
        config, infer = train.make_config(parse(flags), CELL_CLASSES)
        assert config.MIXED_PRECISION == infer.MIXED_PRECISION, flags
        got[" ".join(flags)] = config.MIXED_PRECISION
    assert got == {"": "auto", "--precision float32": None, "--precision bfloat16": "bfloat16",
                   "--precision float16": "float16", "--precision auto": "auto",
                   "--precision bfloat16 --mixed-precision": "bfloat16"}
    assert train.make_config(parse(["--mixed-precision"]), CELL_CLASSES)[0].MIXED_PRECISION in (
        "bfloat16", "float16")
    with pytest.raises(SystemExit, match="--mixed-precision asks for 16-bit convolutions and "
                                         "--precision float32"):
        train.make_config(parse(["--mixed-precision", "--precision", "float32"]), CELL_CLASSES)
    with pytest.raises(SystemExit):
        parse(["--precision", "half"])


def test_train_flags_set_the_config():
    train = load_script("train")
    parse = train.build_parser().parse_args
    config, infer = train.make_config(parse([]), CELL_CLASSES)
    assert config.LR_SCHEDULE == "cosine" and config.LR_DECAY_EPOCHS == ()
    assert config.MAX_GT_INSTANCES == 256 and config.DETECTION_MAX_INSTANCES == 400
    args = parse(["--lr-schedule", "step", "--lr-decay-epochs", "20,25", "--lr-decay-gamma",
                  "0.5", "--max-gt-instances", "800", "--detection-max-instances", "1000"])
    config, infer = train.make_config(args, CELL_CLASSES)
    assert (config.LR_SCHEDULE, tuple(config.LR_DECAY_EPOCHS), config.LR_DECAY_GAMMA) == (
        "step", (20, 25), 0.5)
    assert config.MAX_GT_INSTANCES == infer.MAX_GT_INSTANCES == 800
    assert config.DETECTION_MAX_INSTANCES == infer.DETECTION_MAX_INSTANCES == 1000
    assert train.make_config(parse(["--lr-schedule", "constant"]), CELL_CLASSES)[
        0].LR_SCHEDULE is False
    with pytest.raises(SystemExit, match=r"--lr-schedule step needs --lr-decay-epochs"):
        train.make_config(parse(["--lr-schedule", "step"]), CELL_CLASSES)
    with pytest.raises(SystemExit, match=r"--lr-decay-epochs is used by --lr-schedule step "
                                         r"only, but the schedule is cosine"):
        train.make_config(parse(["--lr-decay-epochs", "5"]), CELL_CLASSES)
    with pytest.raises(SystemExit, match=r"--max-gt-instances must be a positive number, got 0"):
        train.make_config(parse(["--max-gt-instances", "0"]), CELL_CLASSES)
    config, infer = train.make_config(parse(["--images-per-gpu", "2", "--devices", "2"]),
                                      CELL_CLASSES)
    assert (config.IMAGES_PER_GPU, config.GPU_COUNT, config.BATCH_SIZE) == (2, 2, 4)
    assert (infer.IMAGES_PER_GPU, infer.GPU_COUNT, infer.BATCH_SIZE) == (1, 1, 1)
    with pytest.raises(SystemExit, match=r"--images-per-gpu must be a positive number, got 0"):
        train.make_config(parse(["--images-per-gpu", "0"]), CELL_CLASSES)
    assert config.MASK_HEAD_CHANNELS == infer.MASK_HEAD_CHANNELS == 128     # the sample's
    config, infer = train.make_config(parse(["--mask-channels", "256"]), CELL_CLASSES)
    assert config.MASK_HEAD_CHANNELS == infer.MASK_HEAD_CHANNELS == 256     # Matterport's
    with pytest.raises(SystemExit, match=r"--mask-channels must be a positive number, got 0"):
        train.make_config(parse(["--mask-channels", "0"]), CELL_CLASSES)
    for bad in ("25,20", "x", "0,3"):
        with pytest.raises(SystemExit):
            parse(["--lr-decay-epochs", bad])
    assert train.parse_epochs("3, 7") == (3, 7)
    mini = {flags: train.make_config(parse(flags), CELL_CLASSES)[0] for flags in (
        (), ("--mini-mask", "none"), ("--mini-mask", "112"), ("--mask-shape", "56"))}
    assert [(c.USE_MINI_MASK, tuple(c.MINI_MASK_SHAPE)) for c in mini.values()] == [
        (True, (56, 56)), (False, (56, 56)), (True, (112, 112)), (True, (56, 56))]
    for bad in ("x", "0"):
        with pytest.raises(SystemExit):
            parse(["--mini-mask", bad])
    assert train.score_every(parse([])) == 0                       # the embedded demo data
    assert train.score_every(parse(["--data", "d"])) == 1
    assert train.score_every(parse(["--coco", "a", "b", "c"])) == 1
    assert train.score_every(parse(["--score-every", "3"])) == 3
    with pytest.raises(SystemExit, match=r"--score-every must be 0 .* got -1"):
        train.score_every(parse(["--score-every", "-1"]))
    post = train.postprocess_config(CELL_CLASSES)          # Sartorius minimums per type
    assert post.min_area == {"astro": 150, "cort": 75, "shsy5y": 75}
    assert train.postprocess_config(["BG", "cell"]).min_area == 75
    args = parse(["--min-area", "15"])
    assert train.postprocess_config(CELL_CLASSES, args.min_area).min_area == 15
    assert post.overlap_order == "score"
    args = parse(["--min-area", "15", "--overlaps", "nested"])
    nested = train.postprocess_config(CELL_CLASSES, args.min_area, args.overlaps)
    assert (nested.min_area, nested.overlap_order) == (15, "nested")
    with pytest.raises(SystemExit, match=r"--min-area must be 0 or more pixels, got -1"):
        train.postprocess_config(CELL_CLASSES, -1)
    assert list(train.make_config(parse([]), CELL_CLASSES)[0].MEAN_PIXEL) == [128.0] * 3
    config, infer = train.make_config(parse(["--mean-pixel", "30"]), CELL_CLASSES)
    assert list(config.MEAN_PIXEL) == list(infer.MEAN_PIXEL) == [30.0] * 3
    config = train.make_config(parse(["--mean-pixel", "30,20,10"]), CELL_CLASSES)[0]
    assert list(config.MEAN_PIXEL) == [30.0, 20.0, 10.0]
    with pytest.raises(SystemExit, match="load_data"):
        train.make_config(parse(["--mean-pixel", "auto"]), CELL_CLASSES)
    for bad in ("x", "1,2", "300"):
        with pytest.raises(SystemExit):
            parse(["--mean-pixel", bad])
    config, infer = train.make_config(
        parse(["--loss-weights", "rpn_class_loss=0.5,rpn_bbox_loss=0.5"]), CELL_CLASSES)
    assert config.LOSS_WEIGHTS == infer.LOSS_WEIGHTS == dict(
        train.CellConfig.LOSS_WEIGHTS, rpn_class_loss=0.5, rpn_bbox_loss=0.5)
    assert train.make_config(parse([]), CELL_CLASSES)[0].LOSS_WEIGHTS == \
        train.CellConfig.LOSS_WEIGHTS
    config = train.make_config(parse(["--rpn-iou", "0.5"]), CELL_CLASSES)[0]
    assert (config.RPN_POSITIVE_IOU, config.RPN_NEGATIVE_IOU) == (0.5, 0.3)
    config = train.make_config(parse([]), CELL_CLASSES)[0]
    assert (config.RPN_POSITIVE_IOU, config.RPN_NEGATIVE_IOU) == (0.7, 0.3)
    with pytest.raises(SystemExit):
        parse(["--rpn-iou", "0.3,0.5"])
    config, infer = train.make_config(parse(["--mask-box-scale", "1.25"]), CELL_CLASSES)
    assert config.MASK_BOX_SCALE == infer.MASK_BOX_SCALE == 1.25
    assert train.make_config(parse([]), CELL_CLASSES)[0].MASK_BOX_SCALE == 1.0
    with pytest.raises(SystemExit, match=r"--mask-box-scale must be a number >= 1, got 0.5"):
        train.make_config(parse(["--mask-box-scale", "0.5"]), CELL_CLASSES)
    config, infer = train.make_config(parse(["--foreground-loss", "2"]), CELL_CLASSES)
    assert config.FOREGROUND_LOSS and config.FOREGROUND_STRIDE == 2
    assert not train.make_config(parse([]), CELL_CLASSES)[0].FOREGROUND_LOSS
    for bad in ("3", "x"):
        with pytest.raises(SystemExit):
            parse(["--foreground-loss", bad])


def test_train_augment_flag_builds_the_augmenter():
    from mrcnn.data.augment import Compose, Rot90

    train = load_script("train")
    parse = train.build_parser().parse_args
    assert parse([]).augment == "none"
    crop, _ = train.make_config(parse([]), CELL_CLASSES)
    pad, _ = train.make_config(parse(["--image-mode", "pad"]), CELL_CLASSES)
    assert train.augmentation("none", crop) is None
    flips = train.augmentation("flips", crop)
    assert isinstance(flips, Compose)
    turns = [op for op in flips.augmenters if isinstance(op, Rot90)]
    assert [t.ks for t in turns] == [(0, 1, 2, 3)]                 # square 256x256 crops
    turns = [op for op in train.augmentation("flips", pad).augmenters if isinstance(op, Rot90)]
    assert [t.ks for t in turns] == [(0, 2)]                       # 576x704: no quarter turns
    cell = train.augmentation("cell", crop)         # seed 002's: scale + the 256x256 crop
    assert [type(op).__name__ for op in cell.augmenters][:4] == ["ScaleCrop", "Fliplr", "Flipud",
                                                                 "Rot90"]
    assert cell.augmenters[0].size == (256, 256) and cell.augmenters[3].ks == (0, 1, 2, 3)
    cell_pad = train.augmentation("cell", pad)      # no crop to make: no scale, half turns
    assert type(cell_pad.augmenters[0]).__name__ == "Fliplr"
    assert cell_pad.augmenters[2].ks == (0, 2)
    geometric = train.augmentation("geometric", crop)      # Cellpose's: scale, any angle
    assert [type(op).__name__ for op in geometric.augmenters] == [
        "RandomScale", "Fliplr", "Flipud", "Rot90", "Rotate"]
    assert parse(["--augment", "geometric"]).augment == "geometric"
    with pytest.raises(SystemExit, match="--augment geometric scales the images: it needs "
                                         "--image-mode crop"):
        train.augmentation("geometric", pad)


class _Recorder:
    """Stands in for MaskRCNN in train.start: records the init_from / resume calls."""

    def __init__(self, zero_init_residual=False):
        self.calls, self.epoch, self.log_dir = [], 0, "logs/cell1"
        self.config = types.SimpleNamespace(BACKBONE_ZERO_INIT_RESIDUAL=zero_init_residual)

    def init_from(self, spec, exclude=None):
        self.calls.append(("init_from", spec, exclude))
        return {"loaded": ["a"], "path": spec, "shape_mismatch": [("mrcnn_class_logits",
                                                                     (1,), (2,))]}

    def resume(self, spec):
        self.calls.append(("resume", spec))
        self.epoch = 3
        return {"path": spec}


@pytest.mark.parametrize("argv, call", [
    ([], None),
    (["--init", "coco"], ("init_from", "coco", "heads")),
    (["--init", "imagenet"], ("init_from", "imagenet", None)),
    (["--init", "pre/mask_rcnn_cell_0020.h5"], ("init_from", "pre/mask_rcnn_cell_0020.h5", None)),
    (["--resume"], ("resume", "last")),
    (["--resume", "best"], ("resume", "best")),
    (["--resume", "logs/cell1/mask_rcnn_cell_0002.h5"],
     ("resume", "logs/cell1/mask_rcnn_cell_0002.h5")),
    (["--weights", "last"], ("resume", "last")),
    (["--weights", "imagenet"], ("init_from", "imagenet", None)),
])
def test_train_init_and_resume_flags(argv, call, capsys):
    train = load_script("train")
    model = _Recorder()
    train.start(model, train.build_parser().parse_args(argv))
    assert model.calls == ([call] if call else [])
    if call and call[0] == "init_from":
        assert "skipped, other shapes: ['mrcnn_class_logits']" in capsys.readouterr().out
    if call is None:
        assert "from random weights\n" in capsys.readouterr().out
        train.start(_Recorder(zero_init_residual=True), train.build_parser().parse_args(argv))
        assert ("from random weights, residual blocks started as the identity "
                "(--no-zero-init-residual: Matterport's init)") in capsys.readouterr().out


def test_train_refuses_ambiguous_weight_flags():
    train = load_script("train")
    parse = train.build_parser().parse_args
    with pytest.raises(SystemExit, match=r"--weights pre\.h5: say what to do with a file: "
                                         r"--init pre\.h5 .* --resume pre\.h5"):
        train.start(_Recorder(), parse(["--weights", "pre.h5"]))
    with pytest.raises(SystemExit, match=r"--init imagenet and --resume last exclude each other"):
        train.start(_Recorder(), parse(["--init", "imagenet", "--resume"]))
    with pytest.raises(SystemExit, match=r"--coco and --data exclude each other"):
        train.load_data(parse(["--data", "x", "--coco", "a.json", "b.json", "img"]))


@pytest.mark.slow
def test_readme_livecell_recipe_runs_as_written(tmp_path, monkeypatch, capsys,
                                               livecell_pretrain):
    """Pretrain on a tiny LIVECell-format set, then --init a Sartorius run from it: a new run
    folder, epoch 0 with the whole --epochs ahead, the pretrained run untouched."""
    import shlex

    from helpers import CELL_SMALL_FLAGS
    from mrcnn.datasets.synthetic_cells import ensure_synthetic_sartorius
    from mrcnn.weights import h5

    train = load_script("train")
    monkeypatch.chdir(tmp_path)
    data = ensure_synthetic_sartorius(str(tmp_path / "sartorius"), n_images=6, seed=0)
    monkeypatch.setenv("DATA", data)
    small = CELL_SMALL_FLAGS + ["--init", "none", "--epochs", "1"]
    pretrain, finetune = [line for line in _readme_blocks("cell-livecell", "bash").splitlines()
                          if line.strip()]
    argv = shlex.split(pretrain)
    assert argv[:2] == ["python", "samples/cell/train.py"] and "--coco" in argv
    # The documented flags, then small sizes. The whole recipe (test_whole_recipe.py) starts
    # with the same command: the livecell_pretrain fixture (conftest) runs it once for both,
    # in a folder copied here.
    assert livecell_pretrain.argv == argv[2:] + small
    livecell_pretrain.copy_to(tmp_path)
    pre_run, = os.listdir(tmp_path / "logs_livecell")
    pre_dir = tmp_path / "logs_livecell" / pre_run
    pre_files = sorted(os.listdir(pre_dir))
    pre_config = (pre_dir / "config.json").read_text()
    assert "mask_rcnn_cell_0001.h5" in pre_files

    argv = [os.path.expandvars(a) for a in shlex.split(finetune)]
    init = argv.index("--init") + 1
    assert argv[init] == "logs_livecell/cell20261129T1200/mask_rcnn_cell_0020.h5"
    argv[init] = f"logs_livecell/{pre_run}/mask_rcnn_cell_0001.h5"      # the step-1 run
    small_init = [a for a in small if a not in ("--init", "none")]
    train.main(argv[2:] + small_init + ["--epochs", "1"])
    run, = os.listdir(tmp_path / "logs")
    files = os.listdir(tmp_path / "logs" / run)
    # a new run trained from epoch 0 (the 1-epoch pretraining did not count: continuing its
    # run would leave nothing to train for --epochs 1) ...
    assert "mask_rcnn_cell_0001.h5" in files and "config.json" in files
    # ... and the pretrained run is as it was
    assert sorted(os.listdir(pre_dir)) == pre_files
    assert (pre_dir / "config.json").read_text() == pre_config
    # the backbone came from the pretraining, the 4-class heads did not (1 class there)
    pre, _ = h5.read_named_weights(str(pre_dir / "mask_rcnn_cell_0001.h5"))
    tuned, _ = h5.read_named_weights(str(tmp_path / "logs" / run / "mask_rcnn_cell_0001.h5"))
    assert pre["mrcnn_class_logits"][0][1].shape != tuned["mrcnn_class_logits"][0][1].shape
    out = capsys.readouterr().out
    assert "initialised " in out and "mrcnn_class_logits" in out.split("initialised ")[1]
    assert "scnn_s1_conv1" not in out.split("other shapes: ")[1].split("\n")[0]


def test_predict_weights_best_loads_the_run_s_best_checkpoint(tmp_path, capsys):
    from mrcnn.training.runs import write_best

    predict = load_script("predict")
    weights = _scored_run(tmp_path / "logs")
    run = weights.parent
    args = predict.build_parser().parse_args(
        [str(tmp_path), "--model-dir", str(tmp_path / "logs"), "--weights", "best"])
    with pytest.raises(FileNotFoundError, match="no best checkpoint"):
        predict.load_models(args)
    second = run / "mask_rcnn_cell_0002.h5"
    second.write_bytes(weights.read_bytes())            # the newest, but not the best
    write_best(str(run), 1, "val_map_iou", "max", 0.31, str(weights))
    capsys.readouterr()
    model, = predict.load_models(args)
    assert f"loaded {weights}" in capsys.readouterr().out
    args.weights = ["last"]
    predict.load_models(args)
    assert f"loaded {second}" in capsys.readouterr().out


def test_anchor_scales_auto_fits_the_training_boxes(tmp_path):
    """--anchor-scales auto: load_data fits the sizes to the training boxes (16 and 23 px
    squares: two sizes per level) and every training box gets an anchor at IoU >= 0.7."""
    import numpy as np

    from mrcnn.data.anchors import anchor_coverage, model_anchors
    from mrcnn.data.boxes import extract_bboxes

    writer = load_file_module("real_nuclei_writer", "benchmarks/real_nuclei.py")
    parts = []
    for k in range(4):
        image, labels = np.full((128, 128), 20, np.uint8), np.zeros((128, 128), np.int32)
        for n, (side, y, x) in enumerate([(16, 24 + 8 * k, 24), (23, 70, 60 + 4 * k),
                                          (16, 90, 100)]):
            labels[y:y + side, x:x + side] = n + 1
            image[y:y + side, x:x + side] = 200
        parts.append((f"img{k}", image, labels))
    data = writer.write_sartorius(str(tmp_path / "data"), parts)
    train = load_script("train")
    args = train.build_parser().parse_args(["--data", data, "--folds", "2", "--classes", "single",
                                            "--crop-size", "64", "--anchor-scales", "auto"])
    with pytest.raises(SystemExit, match="load_data"):
        train.make_config(args, ["BG", "cell"])
    tr, val = train.load_data(args)
    levels = train.parse_anchor_scales(args.anchor_scales)
    assert all(len(level) == 2 for level in levels), args.anchor_scales
    config = train.make_config(args, val.class_names)[0]
    assert [list(v) for v in config.RPN_ANCHOR_SCALES] == [list(v) for v in levels]
    boxes = np.concatenate([extract_bboxes(np.asarray(tr.load_mask(i)[0], bool))
                            for i in tr.image_ids])
    config.IMAGE_SHAPE = np.array([128, 128, 3])           # the grid over the whole image
    assert anchor_coverage(boxes, model_anchors(config))["covered"] == 1.0


def _blob_tiles(sizes):
    import numpy as np
    parts = []
    for k, (h, w) in enumerate(sizes):
        image, labels = np.full((h, w), 20, np.uint8), np.zeros((h, w), np.int32)
        for n, (y, x) in enumerate([(10, 10), (h - 30, w - 30), (h // 2, w // 2)]):
            labels[y:y + 16, x:x + 16] = n + 1
            image[y:y + 16, x:x + 16] = 200
        parts.append((f"img{k}", image, labels))
    return parts


def test_input_size_follows_the_data_not_sartorius(tmp_path):
    """load_data measures the largest image of both sets: evaluation's input (and pad mode's)
    holds it, rounded up to 64 and times --scale (it was fixed at 576x704)."""
    writer = load_file_module("real_nuclei_writer", "benchmarks/real_nuclei.py")
    data = writer.write_sartorius(str(tmp_path / "data"),
                                  _blob_tiles([(200, 330), (150, 130), (90, 400), (64, 64)]))
    train = load_script("train")
    for extra, expect in (([], [256, 448]), (["--scale", "2"], [448, 832])):
        args = train.build_parser().parse_args(["--data", data, "--folds", "2", "--classes",
                                                "single", "--image-mode", "pad"] + extra)
        tr, val = train.load_data(args)
        assert args.image_shape == (200, 400)
        config, infer = train.make_config(args, val.class_names)
        assert [int(v) for v in infer.IMAGE_SHAPE] == expect + [3]
        assert [int(v) for v in config.IMAGE_SHAPE] == expect + [3]
    args = train.build_parser().parse_args(["--folds", "2"])      # no data measured: Sartorius
    assert [int(v) for v in train.make_config(args, ["BG", "cell"])[1].IMAGE_SHAPE] == \
        [576, 704, 3]


def test_train_scores_images_larger_than_sartorius(tmp_path):
    """A 600x760 data set trains on crops and scores every epoch on whole images (the
    evaluation input was 576x704 and refused them after the first epoch)."""
    writer = load_file_module("real_nuclei_writer", "benchmarks/real_nuclei.py")
    data = writer.write_sartorius(str(tmp_path / "data"), _blob_tiles([(600, 760)] * 2))
    train = load_script("train")
    scores = train.main(["--data", data, "--folds", "2", "--classes", "single", "--backbone",
                         "small-cnn", "--crop-size", "64", "--epochs", "1", "--steps-per-epoch",
                         "1", "--validation-steps", "1", "--model-dir", str(tmp_path / "logs"),
                         "--min-area", "15"])
    assert 0.0 <= scores["map_iou"] <= 1.0
    history = (next((tmp_path / "logs").glob("cell*")) / "history.csv").read_text()
    assert "val_map_iou" in history.splitlines()[0]


def test_train_tta_flag_scores_the_final_checkpoint_with_tta(tmp_path, capsys, monkeypatch):
    """--tta dihedral: the input holds the images (the turned ones run in inputs of their own
    size), and the final score goes through a TTAModel of the run's checkpoint (the untrained
    baseline and the epochs stay plain)."""
    from mrcnn.inference.tta import TTAModel, tta_variants

    writer = load_file_module("real_nuclei_writer", "benchmarks/real_nuclei.py")
    data = writer.write_sartorius(str(tmp_path / "data"), _blob_tiles([(96, 160)] * 2))
    train = load_script("train")
    base = ["--data", data, "--folds", "2", "--classes", "single", "--backbone", "small-cnn",
            "--crop-size", "64", "--epochs", "1", "--steps-per-epoch", "2",
            "--validation-steps", "1", "--score-every", "0", "--min-area", "15",
            "--detection-max-instances", "20", "--model-dir", str(tmp_path / "logs")]
    args = train.build_parser().parse_args(base + ["--tta", "dihedral"])
    train.load_data(args)
    infer = train.make_config(args, ["BG", "cell"])[1]
    assert [int(v) for v in infer.IMAGE_SHAPE[:2]] == [128, 192]   # 96x160; 160x96 in a twin
    plain = train.build_parser().parse_args(base)
    train.load_data(plain)
    assert [int(v) for v in train.make_config(plain, ["BG", "cell"])[1].IMAGE_SHAPE[:2]] == \
        [128, 192]
    assert train.build_parser().parse_args(base + ["--tta"]).tta == "flips"
    assert train.build_parser().parse_args(base + ["--tta", "none,lr"]).tta == ["none", "lr"]
    with pytest.raises(SystemExit):
        train.build_parser().parse_args(base + ["--tta", "spin"])
    assert "spin" in capsys.readouterr().err

    scored, real = [], train.evaluate
    monkeypatch.setattr(train, "evaluate", lambda model, *a, **k: (scored.append(model),
                                                                    real(model, *a, **k))[1])
    scores = train.main(base + ["--tta", "dihedral"])
    assert 0.0 <= scores["map_iou"] <= 1.0
    assert "with --tta dihedral" in capsys.readouterr().out
    untrained, final = scored
    assert not isinstance(untrained, TTAModel) and isinstance(final, TTAModel)
    assert final.variants == tta_variants("dihedral") and len(final.models) == 1
    assert [int(v) for v in final.models[0].config.IMAGE_SHAPE[:2]] == [128, 192]
    assert sorted(final.models[0]._input_twins) == [(192, 128)]    # the turned variants
    assert final.models[0].epoch == 1                     # the run's checkpoint, loaded


@pytest.mark.slow          # ~1 minute: on the TensorFlow pass only
def test_train_runs_with_resampling_augmentation(tmp_path):
    """--augment geometric trains end to end on crops (scaled, rotated samples).

    --augment cell takes the same path (a resampling augmenter in crop mode); what it
    builds is checked above without training."""
    writer = load_file_module("real_nuclei_writer", "benchmarks/real_nuclei.py")
    data = writer.write_sartorius(str(tmp_path / "data"), _blob_tiles([(96, 112)] * 2))
    train = load_script("train")
    scores = train.main(["--data", data, "--folds", "2", "--classes", "single", "--backbone",
                         "small-cnn", "--crop-size", "64", "--epochs", "1", "--steps-per-epoch",
                         "2", "--validation-steps", "1", "--augment", "geometric", "--score-every",
                         "0", "--model-dir", str(tmp_path / "logs"), "--min-area", "15"])
    assert 0.0 <= scores["map_iou"] <= 1.0
    history = (next((tmp_path / "logs").glob("cell*")) / "history.csv").read_text()
    assert len(history.splitlines()) == 2          # the header and the epoch trained


def test_zero_init_residual_flag():
    """--zero-init-residual: by default on for ResNet-50/101 from random weights only; as
    given otherwise; refused for a backbone without residual blocks."""
    train = load_script("train")
    parse = train.build_parser().parse_args

    def zero(*argv):
        return train.make_config(parse(list(argv)), CELL_CLASSES)[0].BACKBONE_ZERO_INIT_RESIDUAL

    assert zero() is False                                  # small-cnn: no residual blocks
    assert zero("--backbone", "resnet50") is True           # from random weights
    assert zero("--backbone", "resnet101") is True
    assert zero("--backbone", "resnet18") is False          # measured: no gain for basic blocks
    assert zero("--backbone", "resnet18", "--zero-init-residual") is True
    assert zero("--backbone", "resnet50", "--weights", "last") is True     # resuming one
    assert zero("--backbone", "resnet50", "--init", "imagenet") is False   # loaded gammas
    assert zero("--backbone", "resnet50", "--weights", "coco") is False
    assert zero("--backbone", "resnet50", "--init", "/runs/a/mask_rcnn_cell_0020.h5") is False
    assert zero("--backbone", "resnet50", "--no-zero-init-residual") is False   # Matterport's
    assert zero("--backbone", "resnet50", "--init", "coco", "--zero-init-residual") is True
    assert zero("--backbone", "efficientnetv2-b0") is False
    config, infer = train.make_config(parse(["--backbone", "resnet101"]), CELL_CLASSES)
    assert infer.BACKBONE_ZERO_INIT_RESIDUAL is True and config.BACKBONE == "resnet101"
    with pytest.raises(SystemExit, match="--zero-init-residual needs a ResNet backbone"):
        train.make_config(parse(["--zero-init-residual"]), CELL_CLASSES)
    with pytest.raises(SystemExit, match="--backbone: unknown backbone 'resnet7'; available"):
        train.make_config(parse(["--backbone", "resnet7"]), CELL_CLASSES)
