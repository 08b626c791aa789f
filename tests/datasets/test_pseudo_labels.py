"""Tests of mrcnn.datasets.pseudo_labels: instance selection by hand, the
train.csv round trip through mrcnn.data.rle and SartoriusDataset."""

import csv
import os

import numpy as np
import pytest
from PIL import Image

from mrcnn.data.masks.sparse import SparseMasks
from mrcnn.data.rle import rle_decode, rle_encode
from mrcnn.datasets.pseudo_labels import (image_cell_type, pseudo_label_rows,
                                          select_pseudo_labels, write_pseudo_labels)
from mrcnn.datasets.sartorius import CSV_COLUMNS, SartoriusDataset, read_sartorius_csv
from helpers import load_sample_script

H, W = 6, 8
NAMES = ["BG", "astro", "cort", "shsy5y"]


def box(y1, y2, x1, x2):
    m = np.zeros((H, W), bool)
    m[y1:y2, x1:x2] = True
    return m


def hand_result():
    """Five instances on a 6x8 image (rows, columns end-exclusive)."""
    masks = np.stack([
        box(0, 4, 0, 5),     # 0: 20 px, score .90
        box(2, 6, 3, 8),     # 1: 20 px, score .95, shares rows 2-3 x cols 3-4 with 0
        box(4, 6, 0, 2),     # 2: 4 px, score .50: under min_score
        box(0, 2, 6, 8),     # 3: 4 px, score .85: too small for min_area 5
        box(3, 5, 5, 7),     # 4: 4 px, score .97, inside 1: wins those pixels, then too small
    ], -1)
    return {"masks": masks, "scores": np.array([0.9, 0.95, 0.5, 0.85, 0.97], np.float32),
            "class_ids": np.array([1, 2, 2, 1, 2], np.int32),
            "rois": np.zeros((5, 4), np.int32)}


def test_selection_hand_case():
    r = hand_result()
    kept = select_pseudo_labels(r, min_score=0.8, min_area=5)
    # Score order 4 (.97), 1 (.95), 0 (.90), 3 (.85). 4 takes its 4 px and is dropped
    # (4 < 5), its pixels staying unlabelled; 1 keeps 20 - 4 = 16; 0 loses the 4 shared
    # pixels to 1 (16 left); 3 has 4 px: dropped.
    want_1 = box(2, 6, 3, 8) & ~box(3, 5, 5, 7)
    want_0 = box(0, 4, 0, 5) & ~box(2, 4, 3, 5)
    assert kept["masks"].shape == (H, W, 2)
    np.testing.assert_array_equal(kept["masks"][..., 0], want_1)
    np.testing.assert_array_equal(kept["masks"][..., 1], want_0)
    assert kept["masks"].sum(axis=(0, 1)).tolist() == [16, 16]
    assert kept["scores"].tolist() == pytest.approx([0.95, 0.9])
    assert kept["class_ids"].tolist() == [2, 1] and kept["class_ids"].dtype == np.int32
    assert kept["masks"].sum(-1).max() == 1                       # disjoint

    # Without an area bound instance 4 stays (4 px) and 3 too; 2 is still under the score.
    kept = select_pseudo_labels(r, min_score=0.8)
    assert kept["masks"].sum(axis=(0, 1)).tolist() == [4, 16, 16, 4]
    assert kept["scores"].tolist() == pytest.approx([0.97, 0.95, 0.9, 0.85])
    # max_area drops the big ones: 1 and 0 have 16 px after the overlaps.
    kept = select_pseudo_labels(r, min_score=0.8, max_area=10)
    assert kept["scores"].tolist() == pytest.approx([0.97, 0.85])
    # min_score 0: instance 2 (4 px, no overlap) comes back.
    assert select_pseudo_labels(r, min_score=0.0)["masks"].shape[-1] == 5


def test_selection_equals_a_brute_force_reference_on_random_discs():
    rng = np.random.default_rng(3)
    yy, xx = np.mgrid[:40, :50]
    for trial in range(10):
        n = 12
        masks = np.stack([(yy - rng.integers(40)) ** 2 + (xx - rng.integers(50)) ** 2
                          <= rng.integers(2, 9) ** 2 for _ in range(n)], -1)
        scores = rng.choice([0.3, 0.6, 0.8, 0.9, 0.95], n)        # ties: earlier first
        class_ids = rng.integers(1, 4, n)
        kept = select_pseudo_labels({"masks": masks, "scores": scores, "class_ids": class_ids},
                                    min_score=0.6, min_area=20, max_area=200)
        owner = np.full((40, 50), -1)
        want = []
        for i in sorted(range(n), key=lambda k: (-scores[k], k)):
            if scores[i] < 0.6:
                continue
            own = masks[..., i] & (owner < 0)
            owner[own] = i
            if 20 <= own.sum() <= 200:
                want.append((i, own))
        assert kept["masks"].shape[-1] == len(want), trial
        for k, (i, own) in enumerate(want):
            np.testing.assert_array_equal(kept["masks"][..., k], own)
            assert kept["scores"][k] == pytest.approx(scores[i])
            assert kept["class_ids"][k] == class_ids[i]


def test_selection_takes_sparse_masks_and_empty_results():
    r = hand_result()
    sparse = dict(r, masks=SparseMasks.from_dense(r["masks"]))
    a = select_pseudo_labels(sparse, min_score=0.8, min_area=5)
    b = select_pseudo_labels(r, min_score=0.8, min_area=5)
    np.testing.assert_array_equal(a["masks"], b["masks"])
    empty = select_pseudo_labels({"masks": np.zeros((H, W, 0), bool), "scores": [],
                                  "class_ids": []})
    assert empty["masks"].shape == (H, W, 0) and empty["scores"].shape == (0,)


@pytest.mark.parametrize("kwargs, match", [
    ({"min_score": 1.5}, r"min_score must be a number in \[0, 1\], got 1\.5"),
    ({"min_score": "0.8"}, r"got '0\.8'"),
    ({"min_area": -1}, r"min_area must be a number >= 0, got -1"),
    ({"max_area": float("nan")}, r"max_area must be a number >= 0 or None, got nan"),
])
def test_selection_refuses_bad_bounds(kwargs, match):
    with pytest.raises(ValueError, match=match):
        select_pseudo_labels(hand_result(), **kwargs)


def test_selection_refuses_inconsistent_results():
    r = dict(hand_result(), scores=np.array([0.9, 0.8]))
    with pytest.raises(ValueError, match="5 masks, 2 scores and 5 class ids"):
        select_pseudo_labels(r)


def test_image_cell_type_is_the_largest_summed_score():
    # cort: .95 + .97 = 1.92; astro: .9 + .85 = 1.75 (+ .5 for shsy5y would not change it)
    r = hand_result()
    assert image_cell_type(r, NAMES) == "cort"
    assert image_cell_type({"class_ids": [1, 2, 2], "scores": [0.9, 0.4, 0.4]}, NAMES) == "astro"
    assert image_cell_type({"class_ids": [], "scores": []}, NAMES) == ""
    assert image_cell_type({"class_ids": [1, 1], "scores": [0.9, 0.9]}, ["BG", "cell"]) == ""
    with pytest.raises(ValueError, match=r"class ids must be in \[1, 3\]"):
        image_cell_type({"class_ids": [4], "scores": [0.9]}, NAMES)


def write_images(folder, ids, value=90):
    os.makedirs(folder, exist_ok=True)
    for image_id in ids:
        Image.fromarray(np.full((H, W), value, np.uint8)).save(os.path.join(folder,
                                                                            f"{image_id}.png"))


def test_rows_round_trip_through_rle_and_sartorius_dataset(tmp_path):
    kept = select_pseudo_labels(hand_result(), min_score=0.8, min_area=5)
    other = np.stack([box(0, 1, 0, 8), box(5, 6, 7, 8)], -1)   # a full row; the last pixel
    rows = (pseudo_label_rows("u1", kept["masks"], image_cell_type(kept, NAMES))
            + pseudo_label_rows("u2", other, "astro")
            + pseudo_label_rows("u3", np.zeros((H, W, 0), bool), "astro"))   # no row
    assert rows[0] == ["u1", rle_encode(kept["masks"][..., 0]), W, H, "cort", "", "", "", ""]
    assert [r[1] for r in rows[2:]] == ["1 8", "48 1"]             # hand-encoded, row-major
    path = tmp_path / "pseudo.csv"
    assert write_pseudo_labels(path, rows) == 4
    lines = path.read_text().splitlines()
    assert lines[0] == ",".join(CSV_COLUMNS) and lines[3] == "u2,1 8,8,6,astro,,,,"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pseudo.csv"]     # no temp file

    records = read_sartorius_csv(path)
    assert list(records) == ["u1", "u2"]
    for image_id, masks in (("u1", kept["masks"]), ("u2", other)):
        rec = records[image_id]
        assert (rec.height, rec.width) == (H, W)
        decoded = np.stack([rle_decode(a, (H, W)) for a in rec.annotations], -1)
        np.testing.assert_array_equal(decoded, masks)

    # Labelled images (train/) and pseudo-labelled ones (train_semi_supervised/) together.
    labelled = np.stack([box(1, 3, 1, 4)], -1)
    with open(tmp_path / "train.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(CSV_COLUMNS)
        writer.writerow(["l1", rle_encode(labelled[..., 0]), W, H, "shsy5y", "", "", "", ""])
    write_images(tmp_path / "train", ["l1"])
    write_images(tmp_path / "train_semi_supervised", ["u1", "u2", "u9"])
    ds = SartoriusDataset()
    ds.load_sartorius(tmp_path)
    ds.load_pseudo_labels(path, tmp_path / "train_semi_supervised")
    ds.prepare()
    assert ds.num_images == 3 and ds.class_names == NAMES
    assert [info["id"] for info in ds.image_info] == ["l1", "u1", "u2"]
    assert [info.get("pseudo_label", False) for info in ds.image_info] == [False, True, True]
    for k, (masks, class_id) in enumerate([(labelled, 3), (kept["masks"], 2), (other, 1)]):
        got, class_ids = ds.load_mask(k)
        np.testing.assert_array_equal(got, masks)
        assert class_ids.tolist() == [class_id] * masks.shape[-1]
    assert ds.load_image(1).shape == (H, W, 3)
    assert ds.image_info[1]["path"] == str(tmp_path / "train_semi_supervised" / "u1.png")

    # A missing image names the pseudo-label CSV.
    os.remove(tmp_path / "train_semi_supervised" / "u2.png")
    with pytest.raises(FileNotFoundError, match=r"image 'u2' \(listed in .*pseudo\.csv"):
        SartoriusDataset().load_pseudo_labels(path, tmp_path / "train_semi_supervised")


def test_single_class_pseudo_labels_have_no_cell_type(tmp_path):
    masks = np.stack([box(0, 2, 0, 2)], -1)
    kept = {"class_ids": [1], "scores": [0.9]}
    rows = pseudo_label_rows("s1", masks, image_cell_type(kept, ["BG", "cell"]))
    assert rows[0][4] == ""
    write_pseudo_labels(tmp_path / "p.csv", rows)
    write_images(tmp_path / "semi", ["s1"])
    ds = SartoriusDataset()
    ds.load_pseudo_labels(tmp_path / "p.csv", tmp_path / "semi", class_mode="single")
    ds.prepare()
    np.testing.assert_array_equal(ds.load_mask(0)[0], masks)
    assert ds.load_mask(0)[1].tolist() == [1]
    assert ds.image_reference(0).startswith("s1 (cell type unknown, ")
    # The cell-type classes need a type.
    with pytest.raises(ValueError, match=r"line 2 \(id 's1'\): unknown cell_type ''"):
        SartoriusDataset().load_pseudo_labels(tmp_path / "p.csv", tmp_path / "semi")


def test_append_keeps_the_rows_and_refuses_an_image_twice(tmp_path):
    path = tmp_path / "p.csv"
    a = pseudo_label_rows("a", np.stack([box(0, 1, 0, 1)], -1), "astro")
    b = pseudo_label_rows("b", np.stack([box(0, 1, 0, 2), box(2, 3, 0, 2)], -1), "cort")
    assert write_pseudo_labels(path, [], append=True) == 0              # header only
    assert write_pseudo_labels(path, a, append=True) == 1
    assert write_pseudo_labels(path, b, append=True) == 3
    records = read_sartorius_csv(path)
    assert {k: len(r.annotations) for k, r in records.items()} == {"a": 1, "b": 2}
    with pytest.raises(ValueError, match=r"already holds pseudo-labels of image\(s\) \['a'\]"):
        write_pseudo_labels(path, a, append=True)
    assert write_pseudo_labels(path, a) == 1                            # overwrite
    (tmp_path / "bad.csv").write_text("id,predicted\na,1 1\n")
    with pytest.raises(ValueError, match=r"cannot append to .*bad\.csv: its header is "
                                         r"\['id', 'predicted'\]"):
        write_pseudo_labels(tmp_path / "bad.csv", a, append=True)
    with pytest.raises(ValueError, match=r"rows\[0\] has 2 fields, expected 9"):
        write_pseudo_labels(path, [("a", "1 1")])
    with pytest.raises(ValueError, match="image id must be a non-empty name"):
        pseudo_label_rows("a,b", np.zeros((2, 2, 1), bool), "astro")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.csv", "p.csv"]


# ------------------------------------------------------------ the sample's recipe
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def readme_recipe():
    """The three commands of samples/cell/README.md's "Pseudo-labels" section."""
    text = open(os.path.join(ROOT, "samples", "cell", "README.md")).read()
    section = text.split("## Pseudo-labels", 1)[1].split("\n## ", 1)[0]
    block = section.split("```bash\n", 1)[1].split("```", 1)[0]
    return [line.split() for line in block.strip().splitlines()]


load_script = load_sample_script


def test_readme_recipe_parses():
    recipe = readme_recipe()
    assert [c[:2] for c in recipe] == [["python", "samples/cell/train.py"],
                                       ["python", "samples/cell/pseudo_label.py"],
                                       ["python", "samples/cell/train.py"]]
    train, pseudo = load_script("train"), load_script("pseudo_label")
    for command in recipe:
        argv = [a.replace("$DATA", "/data") for a in command[2:]]
        args = (pseudo if "pseudo_label" in command[1] else train).build_parser().parse_args(argv)
    assert args.pseudo_labels == "pseudo.csv"


@pytest.mark.slow
def test_readme_recipe_train_pseudo_label_fine_tune(tmp_path, monkeypatch):
    """The README's three commands as written, at tiny sizes, on a generated data folder."""
    from mrcnn.datasets.synthetic_cells import synthetic_sartorius_image, write_synthetic_sartorius

    data = tmp_path / "data"
    write_synthetic_sartorius(data, n_images=6, height=128, width=192)
    semi = data / "train_semi_supervised"
    semi.mkdir()
    semi_ids = []
    for index in range(2):
        image_id, _, image, _ = synthetic_sartorius_image(seed=7, index=index, height=128,
                                                          width=192)
        Image.fromarray(image).save(semi / f"{image_id}.png")
        semi_ids.append(image_id)
    monkeypatch.chdir(tmp_path)
    tiny = ["--backbone", "small-cnn", "--steps-per-epoch", "2", "--validation-steps", "1",
            "--folds", "3", "--crop-size", "64"]
    train, pseudo = load_script("train"), load_script("pseudo_label")
    recipe = [[a.replace("$DATA", str(data)) for a in c[2:]] for c in readme_recipe()]
    assert recipe[2][recipe[2].index("--init") + 1] == "last"
    # Fewer epochs: step 3 starts a new run from step 1's checkpoint.
    first = recipe[0] + tiny + ["--epochs", "1"]
    train.main(first)
    (run,) = os.listdir(tmp_path / "logs")
    assert os.listdir(tmp_path / "logs" / run).count("mask_rcnn_cell_0001.h5") == 1

    # Step 2: an untrained model's detections are left to chance: its heads are pinned so
    # that every ROI is a confident full-box detection; keep every one.
    from model_helpers import pin_loaded_models
    pin_loaded_models(monkeypatch, pseudo.predict)
    pseudo.main(recipe[1] + ["--min-score", "0.0", "--min-area", "1"])
    records = read_sartorius_csv(tmp_path / "pseudo.csv")
    assert set(records) <= set(semi_ids) and records
    for record in records.values():
        masks = np.stack([rle_decode(a, (128, 192)) for a in record.annotations], -1)
        assert masks.sum(-1).max() == 1                          # disjoint
        assert record.cell_type in ("astro", "cort", "shsy5y")

    # Step 3: the pseudo-labelled images join the training set (not the validation one).
    seen = {}
    original = train.load_data

    def load_data(args):
        seen["sets"] = original(args)
        return seen["sets"]

    monkeypatch.setattr(train, "load_data", load_data)
    step1 = sorted(os.listdir(tmp_path / "logs" / run))
    last = recipe[2] + tiny + ["--epochs", "2"]
    train.main(last)
    train_set, val_set = seen["sets"]
    pseudo_ids = [i["id"] for i in train_set.image_info if i.get("pseudo_label")]
    assert sorted(pseudo_ids) == sorted(records)
    assert not any(i.get("pseudo_label") for i in val_set.image_info)
    assert train_set.num_images == 4 + len(records)
    (new_run,) = set(os.listdir(tmp_path / "logs")) - {run}    # a new run, from epoch 0
    ckpts = sorted(f for f in os.listdir(tmp_path / "logs" / new_run)
                   if f.startswith("mask_rcnn_cell_"))
    assert ckpts[:2] == ["mask_rcnn_cell_0001.h5", "mask_rcnn_cell_0002.h5"]
    assert sorted(os.listdir(tmp_path / "logs" / run)) == step1  # step 1's run untouched


def test_pseudo_label_script_checks_its_input_before_loading_a_model(tmp_path):
    pseudo = load_script("pseudo_label")
    write_images(tmp_path / "semi", ["a"])
    Image.fromarray(np.zeros((H, W), np.uint8)).save(tmp_path / "semi" / "b.tif")
    base = ["--images", str(tmp_path / "semi"), "--model-dir", str(tmp_path / "none")]
    with pytest.raises(SystemExit, match=r"--min-score must be in \[0, 1\], got 1\.5"):
        pseudo.main(base + ["--min-score", "1.5"])
    with pytest.raises(ValueError, match=r"1 image\(s\) of .*semi are not PNG files, e\.g\. "
                                         r".*b\.tif"):
        pseudo.main(base + ["--out", str(tmp_path / "p.csv")])
    os.remove(tmp_path / "semi" / "b.tif")
    with pytest.raises(FileNotFoundError, match="no checkpoint under"):
        pseudo.main(base + ["--out", str(tmp_path / "p.csv")])
    assert not os.path.exists(tmp_path / "p.csv")
