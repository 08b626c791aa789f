"""Run folders and checkpoint names (mrcnn/training/runs.py)."""

import datetime
import os

import pytest

from mrcnn.training.runs import checkpoint_epoch, find_last, run_name, run_paths


def touch(path):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    open(path, "w").close()
    return str(path)


def test_new_run_folder_is_stamped_and_named(tmp_path):
    now = datetime.datetime(2026, 11, 29, 18, 5, 7)
    epoch, log_dir, pattern = run_paths(tmp_path, "Cell", now=now)
    assert epoch == 0
    assert log_dir == os.path.join(str(tmp_path), "cell20261129T180507")
    assert pattern.format(epoch=12) == os.path.join(log_dir, "mask_rcnn_cell_0012.h5")
    assert run_name(None) == "mrcnn"


def test_a_checkpoint_continues_its_run_after_its_epoch(tmp_path):
    path = touch(tmp_path / "cell20261129T1805" / "mask_rcnn_cell_0007.h5")
    epoch, log_dir, pattern = run_paths(tmp_path / "elsewhere", "cell", path)
    assert epoch == 7 and log_dir == str(tmp_path / "cell20261129T1805")
    assert pattern.format(epoch=8).endswith("cell20261129T1805/mask_rcnn_cell_0008.h5")
    assert checkpoint_epoch("mask_rcnn_coco.h5") is None
    # any other file starts a new run
    assert run_paths(tmp_path, "cell", str(tmp_path / "mask_rcnn_coco.h5"))[0] == 0


def test_find_last_takes_the_newest_run_of_this_name_only(tmp_path):
    touch(tmp_path / "cell20261128T0900" / "mask_rcnn_cell_0009.h5")       # Matterport's stamp
    newest = touch(tmp_path / "cell20261129T100000" / "mask_rcnn_cell_0002.h5")
    touch(tmp_path / "cell20261129T100000" / "mask_rcnn_cell_0001.h5")
    touch(tmp_path / "cellpose20261130T100000" / "mask_rcnn_cellpose_0005.h5")  # another name
    os.makedirs(tmp_path / "cell20261130T100000")                              # empty run
    assert find_last(tmp_path, "cell") == newest
    with pytest.raises(FileNotFoundError, match=r"no checkpoint of config 'nucleus' under .*"
                                                r"nucleus\*/mask_rcnn_nucleus_NNNN\.h5"):
        find_last(tmp_path, "nucleus")
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        find_last(tmp_path / "missing", "cell")


def test_find_last_of_any_name_takes_the_newest_stamp(tmp_path):
    touch(tmp_path / "nucleus20261201T0900" / "mask_rcnn_nucleus_0003.h5")   # Matterport's stamp
    newest = touch(tmp_path / "cell20261201T100000" / "mask_rcnn_cell_0001.h5")
    touch(tmp_path / "zebra20261130T235959" / "mask_rcnn_zebra_0009.h5")      # older, later name
    touch(tmp_path / "notes" / "mask_rcnn_notes_0001.h5")                      # not a run folder
    assert find_last(tmp_path) == newest
    with pytest.raises(FileNotFoundError, match=r"no checkpoint under .*<name><YYYYmmddTHHMMSS>"):
        find_last(tmp_path / "empty")
