"""samples/cell/README.md "The whole recipe", its five commands as written, at tiny sizes.

Pretrain on a generated LIVECell-format COCO json -> fine-tune on a generated
Sartorius folder (a new run, epoch 0, keeping the best checkpoint by mAP-IoU)
-> pseudo-label train_semi_supervised/ with it -> fine-tune again from it on
both sets -> predict test/ with TTA into a validated submission.csv. Each
command is run through its script's main(argv): the README's words, the
placeholders ($DATA, the pretrained run folder) filled in, then small-size
flags appended (argparse keeps the last value of a repeated flag).
"""

import csv
import json
import os
import re

import numpy as np
import pytest
from helpers import CELL_SMALL_FLAGS, cell_readme_commands, load_sample_script

H, W = 128, 192                                   # the generated Sartorius images
SMALL = CELL_SMALL_FLAGS


load_script = load_sample_script


def recipe_commands():
    """The command lines of the bash block after <!-- cell-whole-recipe -->, split into words."""
    return cell_readme_commands("cell-whole-recipe")


def write_unlabelled(folder, seed, n):
    """n generated Sartorius-like images (no annotations) as <id>.png; returns the ids."""
    from PIL import Image

    from mrcnn.datasets.synthetic_cells import synthetic_sartorius_image

    folder.mkdir()
    ids = []
    for index in range(n):
        image_id, _, image, _ = synthetic_sartorius_image(seed=seed, index=index, height=H,
                                                          width=W)
        Image.fromarray(image).save(folder / f"{image_id}.png")
        ids.append(image_id)
    return ids


def printed_paths(out, before, after):
    """Absolute paths of the files printed as '<before>PATH<after>' in `out`."""
    pattern = re.escape(before) + r"(\S+)" + re.escape(after)
    return {os.path.abspath(m) for m in re.findall(pattern, out)}


def checkpoints(run_dir):
    return sorted(f for f in os.listdir(run_dir) if re.fullmatch(r"mask_rcnn_cell_\d{4}\.h5", f))


def history(run_dir):
    with open(run_dir / "history.csv", newline="") as f:
        return list(csv.DictReader(f))


def snapshot(run_dir):
    """{file name: bytes} of a run folder's files (what 'untouched' compares)."""
    return {f: (run_dir / f).read_bytes() for f in sorted(os.listdir(run_dir))
            if (run_dir / f).is_file()}


def check_best(run_dir, epochs):
    """best.json names a kept checkpoint whose val_map_iou in history.csv it records, the
    highest of the run; the run started at epoch 0 (history epochs 0..epochs-1, checkpoints
    numbered from 1) and kept only the best and the newest. Returns the best's path."""
    rows = history(run_dir)
    assert [int(r["epoch"]) for r in rows] == list(range(epochs))
    scores = [float(r["val_map_iou"]) for r in rows]
    assert all(0.0 <= s <= 1.0 for s in scores)
    best = json.loads((run_dir / "best.json").read_text())
    assert best["monitor"] == "val_map_iou" and best["mode"] == "max"
    assert best["checkpoint"] == f"mask_rcnn_cell_{best['epoch']:04d}.h5"
    assert best["value"] == pytest.approx(scores[best["epoch"] - 1]) == pytest.approx(max(scores))
    newest = f"mask_rcnn_cell_{epochs:04d}.h5"
    assert checkpoints(run_dir) == sorted({best["checkpoint"], newest})
    return str(run_dir / best["checkpoint"])


def test_recipe_block_is_the_five_steps_with_their_flags():
    commands = recipe_commands()
    assert [c[:2] for c in commands] == [["python", "samples/cell/train.py"]] * 2 + [
        ["python", "samples/cell/pseudo_label.py"], ["python", "samples/cell/train.py"],
        ["python", "samples/cell/predict.py"]]
    pretrain, finetune, label, refine, submit = commands
    flag = lambda words, name: words[words.index(name) + 1]             # noqa: E731
    assert "--coco" in pretrain and flag(pretrain, "--model-dir") == "logs_livecell"
    assert flag(finetune, "--init").startswith("logs_livecell/")
    assert flag(finetune, "--keep") == flag(refine, "--keep") == "best"
    assert flag(label, "--weights") == flag(refine, "--init") == flag(submit, "--weights") \
        == "best"
    assert flag(refine, "--pseudo-labels") == flag(label, "--out")
    assert "--tta" in submit
    # the same architecture in every training step (or layers would not carry over)
    for name in ("--backbone", "--image-mode", "--max-gt-instances"):
        assert flag(pretrain, name) == flag(finetune, name) == flag(refine, name)


@pytest.mark.slow
def test_whole_recipe_runs_as_written(tmp_path, monkeypatch, capsys, livecell_pretrain):
    from mrcnn.data.rle import rle_decode
    from mrcnn.datasets.sartorius import read_sartorius_csv
    from mrcnn.datasets.synthetic_cells import write_synthetic_sartorius
    from mrcnn.inference import validate_submission

    monkeypatch.chdir(tmp_path)
    data = tmp_path / "data"
    write_synthetic_sartorius(data, n_images=6, height=H, width=W)
    semi_ids = write_unlabelled(data / "train_semi_supervised", seed=7, n=2)
    test_ids = write_unlabelled(data / "test", seed=8, n=2)
    monkeypatch.setenv("DATA", str(data))
    train, pseudo, predict = (load_script(n) for n in ("train", "pseudo_label", "predict"))
    pretrain, finetune, label, refine, submit = (
        [os.path.expandvars(w) for w in words[2:]] for words in recipe_commands())

    # 1. pretrain on the COCO json (no ImageNet file offline: --init none). The README's
    #    LIVECell section starts with the same command: the livecell_pretrain fixture (conftest)
    #    runs it once for both tests, in a folder copied here.
    assert livecell_pretrain.argv == pretrain + SMALL + ["--init", "none", "--epochs", "1"]
    livecell_pretrain.copy_to(tmp_path)
    pre_run, = os.listdir(tmp_path / "logs_livecell")
    pre_dir = tmp_path / "logs_livecell" / pre_run
    assert checkpoints(pre_dir) == ["mask_rcnn_cell_0001.h5"]
    pre_files = snapshot(pre_dir)

    # 2. fine-tune on Sartorius from the pretrained checkpoint: a new run from epoch 0
    init = finetune.index("--init") + 1
    assert re.fullmatch(r"logs_livecell/cell\d{8}T\d{4}/mask_rcnn_cell_\d{4}\.h5", finetune[init])
    finetune[init] = f"logs_livecell/{pre_run}/mask_rcnn_cell_0001.h5"   # the run step 1 made
    capsys.readouterr()
    train.main(finetune + SMALL + ["--epochs", "2"])
    assert printed_paths(capsys.readouterr().out, " layers from ", " (skipped") == {
        str(pre_dir / "mask_rcnn_cell_0001.h5")}
    tuned_run, = os.listdir(tmp_path / "logs")
    tuned_dir = tmp_path / "logs" / tuned_run
    tuned_best = check_best(tuned_dir, epochs=2)
    assert snapshot(pre_dir) == pre_files                         # the pretraining untouched
    tuned_files = snapshot(tuned_dir)

    # 3. pseudo-labels from the best checkpoint (an untrained model's detections are left to
    #    chance: its heads are pinned so that every ROI is a confident full-box detection)
    from model_helpers import pin_loaded_models
    pin_loaded_models(monkeypatch, pseudo.predict)
    pin_loaded_models(monkeypatch, predict)
    pseudo.main(label + ["--min-score", "0.0", "--min-area", "1"])
    assert printed_paths(capsys.readouterr().out, "loaded ", "\n") == {tuned_best}
    records = read_sartorius_csv(tmp_path / "pseudo.csv")
    assert records and set(records) <= set(semi_ids)
    for record in records.values():
        masks = np.stack([rle_decode(a, (H, W)) for a in record.annotations], -1)
        assert masks.any(axis=(0, 1)).all() and masks.sum(-1).max() == 1      # disjoint
        assert record.cell_type in ("astro", "cort", "shsy5y")

    # 4. fine-tune again from the best checkpoint, on train/ plus the pseudo-labelled images
    seen = {}
    original = train.load_data

    def load_data(args):
        seen["sets"] = original(args)
        return seen["sets"]

    monkeypatch.setattr(train, "load_data", load_data)
    train.main(refine + SMALL + ["--epochs", "1"])
    assert printed_paths(capsys.readouterr().out, " layers from ", " (skipped") == {tuned_best}
    train_set, val_set = seen["sets"]
    pseudo_ids = sorted(i["id"] for i in train_set.image_info if i.get("pseudo_label"))
    assert pseudo_ids == sorted(records)
    assert train_set.num_images == 4 + len(records)               # 4 of 6 labelled: 3 folds
    assert not any(i.get("pseudo_label") for i in val_set.image_info)
    refined_run, = set(os.listdir(tmp_path / "logs")) - {tuned_run}
    refined_best = check_best(tmp_path / "logs" / refined_run, epochs=1)
    assert snapshot(tuned_dir) == tuned_files                     # step 2's run untouched

    # 5. the submission: the second fine-tune's best checkpoint, TTA, validated (an
    #    untrained model's scores are low: keep every detection, so that there are masks)
    predict.main(submit + ["--min-score", "0.0", "--min-area", "1"])
    assert printed_paths(capsys.readouterr().out, "loaded ", "\n") == {refined_best}
    report = validate_submission("submission.csv", {i: (H, W) for i in test_ids})
    assert report["images"] == len(test_ids)
    with open("submission.csv", newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["id", "predicted"] and {r[0] for r in rows[1:]} == set(test_ids)
    assert {r[0] for r in rows[1:] if r[1]} == set(test_ids)       # masks on every image
    assert report["instances"] == sum(bool(r[1]) for r in rows[1:])
