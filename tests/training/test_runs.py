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


# ------------------------------------------------- checkpoints newest first, leftovers
def test_list_checkpoints_newest_first_never_temporary_files(tmp_path):
    from mrcnn.training.runs import list_checkpoints
    old = touch(tmp_path / "cell20261128T0900" / "mask_rcnn_cell_0009.h5")
    new1 = touch(tmp_path / "cell20261129T100000" / "mask_rcnn_cell_0001.h5")
    new2 = touch(tmp_path / "cell20261129T100000" / "mask_rcnn_cell_0002.h5")
    # a save killed half-way leaves a temporary file; it is newer than every checkpoint
    touch(tmp_path / "cell20261129T100000" / ".tmp-k2j3h4.h5")
    touch(tmp_path / "cell20261129T100000" / "mask_rcnn_cell_0003.h5.unverified")
    touch(tmp_path / "nucleus20261130T100000" / "mask_rcnn_nucleus_0001.h5")
    assert list_checkpoints(tmp_path, "cell") == [new2, new1, old]
    assert find_last(tmp_path, "cell") == new2
    assert list_checkpoints(tmp_path)[0].endswith("mask_rcnn_nucleus_0001.h5")
    assert list_checkpoints(tmp_path / "missing", "cell") == []


def test_a_run_starting_in_a_folder_removes_leftover_partial_saves(tmp_path):
    from mrcnn.training.loop import prepare_run_folder
    from model_helpers import make_config
    run = tmp_path / "tiny20261129T100000"
    keep = [touch(run / "mask_rcnn_tiny_0001.h5"), touch(run / "history.csv"),
            touch(run / "notes.tmp-1.h5"), touch(run / ".tmp-notes.txt")]
    touch(run / ".tmp-a1b2c3.h5")
    touch(run / ".tmp-zz.h5")
    prepare_run_folder(str(run), make_config())
    assert sorted(os.listdir(run)) == sorted([os.path.basename(p) for p in keep]
                                             + ["config.json"])


def test_trim_history_drops_the_rows_of_epochs_to_be_redone(tmp_path):
    from mrcnn.training.runs import trim_history
    path = tmp_path / "history.csv"
    path.write_text("epoch,loss\r\n0,3.0\r\n1,2.0\r\n2,1.0\r\n1,1.5\r\n")
    assert trim_history(str(path), 1) == 3
    assert path.read_bytes() == b"epoch,loss\r\n0,3.0\r\n"
    assert trim_history(str(path), 1) == 0 and trim_history(str(tmp_path / "none.csv"), 0) == 0
    assert sorted(os.listdir(tmp_path)) == ["history.csv"]


def test_abandoned_saves_of_runs_without_a_checkpoint_are_removed_after_a_grace(tmp_path,
                                                                                 monkeypatch):
    import time

    from mrcnn.training.runs import remove_abandoned_saves

    dead = touch(tmp_path / "cell20261201T0900" / ".tmp-abc.h5")          # no checkpoint
    config = touch(tmp_path / "cell20261201T0900" / ".tmp-config-x.json")
    kept_run = touch(tmp_path / "cell20261202T0900" / ".tmp-def.h5")
    touch(tmp_path / "cell20261202T0900" / "mask_rcnn_cell_0001.h5")      # has a checkpoint
    other = touch(tmp_path / "nucleus20261201T0900" / ".tmp-x.h5")        # another NAME
    old = time.time() - 3600
    for path in (dead, config, kept_run, other):
        os.utime(path, (old, old))
    fresh = touch(tmp_path / "cell20261203T0900" / ".tmp-new.h5")         # being written now
    assert remove_abandoned_saves(tmp_path, "cell") == [dead, config]
    assert all(os.path.exists(p) for p in (kept_run, other, fresh))
    monkeypatch.setenv("MRCNN_PARTIAL_SAVE_GRACE_S", "0")
    assert remove_abandoned_saves(tmp_path, "cell") == [fresh]
    monkeypatch.setenv("MRCNN_PARTIAL_SAVE_GRACE_S", "soon")
    with pytest.raises(ValueError, match="MRCNN_PARTIAL_SAVE_GRACE_S must be a number"):
        remove_abandoned_saves(tmp_path, "cell")


# ------------------------------------------------ training states, best record, keep policy
def test_state_path_sits_beside_a_run_checkpoint_only(tmp_path):
    from mrcnn.training.runs import state_path
    ckpt = str(tmp_path / "cell20261129T1805" / "mask_rcnn_cell_0007.h5")
    assert state_path(ckpt) == str(tmp_path / "cell20261129T1805" / "train_state_cell_0007.h5")
    assert state_path(str(tmp_path / "mask_rcnn_coco.h5")) is None


def test_require_checkpoint_name_refuses_other_files_pointing_to_init(tmp_path):
    from mrcnn.training.runs import require_checkpoint_name
    assert require_checkpoint_name(str(tmp_path / "mask_rcnn_cell_0012.h5")) == 12
    with pytest.raises(ValueError, match=r"cannot resume from .*pretrained\.h5.*init_from"):
        require_checkpoint_name(str(tmp_path / "pretrained.h5"))


def test_best_record_round_trip_and_find_best_takes_the_newest_run_with_one(tmp_path):
    from mrcnn.training.runs import find_best, read_best, write_best
    old = tmp_path / "cell20261128T100000"
    new = tmp_path / "cell20261129T100000"
    newest = tmp_path / "cell20261130T100000"          # newer, but records no best
    old_ckpt = touch(old / "mask_rcnn_cell_0003.h5")
    new_ckpt = touch(new / "mask_rcnn_cell_0002.h5")
    touch(newest / "mask_rcnn_cell_0001.h5")
    write_best(str(old), 3, "val_map_iou", "max", 0.25, old_ckpt)
    record = write_best(str(new), 2, "val_map_iou", "max", 0.5, new_ckpt)
    assert read_best(str(new)) == record == {"epoch": 2, "monitor": "val_map_iou",
                                              "mode": "max", "value": 0.5,
                                              "checkpoint": "mask_rcnn_cell_0002.h5"}
    assert read_best(str(newest)) is None
    assert find_best(tmp_path, "cell") == new_ckpt
    assert not [f for f in os.listdir(new) if f.startswith(".tmp-")]
    os.remove(new_ckpt)                                   # keep="last" deleted it
    with pytest.raises(FileNotFoundError, match=r"mask_rcnn_cell_0002\.h5.*was not kept"):
        find_best(tmp_path, "cell")
    with pytest.raises(FileNotFoundError, match=r"no best checkpoint of config 'nucleus'"):
        find_best(tmp_path, "nucleus")
    (old / "best.json").write_text("{not json")
    with pytest.raises(ValueError, match=r"best\.json: not a best-checkpoint record"):
        read_best(str(old))


def test_set_aside_after_moves_the_abandoned_branch_and_its_best(tmp_path):
    from mrcnn.training.runs import find_last, set_aside_after, write_best
    run = tmp_path / "cell20261129T100000"
    for e in (1, 2, 3):
        touch(run / f"mask_rcnn_cell_{e:04d}.h5")
    touch(run / "train_state_cell_0003.h5")
    touch(run / "history.csv")
    write_best(str(run), 3, "val_loss", "min", 0.1, str(run / "mask_rcnn_cell_0003.h5"))
    now = datetime.datetime(2026, 11, 30, 8, 0, 0)
    folder, moved = set_aside_after(str(run), 1, now=now)
    assert folder == str(run / "abandoned-after-0001-20261130T080000")
    assert moved == ["mask_rcnn_cell_0002.h5", "mask_rcnn_cell_0003.h5",
                     "train_state_cell_0003.h5", "best.json"]
    assert sorted(os.listdir(run)) == ["abandoned-after-0001-20261130T080000", "history.csv",
                                       "mask_rcnn_cell_0001.h5"]
    assert sorted(os.listdir(folder)) == sorted(moved)
    assert find_last(tmp_path, "cell").endswith("mask_rcnn_cell_0001.h5")
    assert set_aside_after(str(run), 1) == (None, [])     # nothing after epoch 1 any more
    # a best record of an epoch that is kept stays
    write_best(str(run), 1, "val_loss", "min", 0.2, str(run / "mask_rcnn_cell_0001.h5"))
    touch(run / "mask_rcnn_cell_0002.h5")
    assert set_aside_after(str(run), 1, now=now + datetime.timedelta(seconds=1))[1] == [
        "mask_rcnn_cell_0002.h5"]
    assert os.path.exists(run / "best.json")


@pytest.mark.parametrize("keep, best, kept", [
    ("all", 2, ["mask_rcnn_cell_0001.h5", "mask_rcnn_cell_0002.h5", "mask_rcnn_cell_0003.h5",
                "mask_rcnn_cell_0004.h5", "train_state_cell_0004.h5"]),
    ("best", 2, ["mask_rcnn_cell_0002.h5", "mask_rcnn_cell_0004.h5", "train_state_cell_0004.h5"]),
    ("best", None, ["mask_rcnn_cell_0004.h5", "train_state_cell_0004.h5"]),
    ("last", 2, ["mask_rcnn_cell_0004.h5", "train_state_cell_0004.h5"]),
])
def test_prune_checkpoints_keeps_what_the_policy_says_and_the_newest_state(tmp_path, keep,
                                                                          best, kept):
    from mrcnn.training.runs import prune_checkpoints
    run = tmp_path / "cell20261129T100000"
    for e in (1, 2, 3, 4):
        touch(run / f"mask_rcnn_cell_{e:04d}.h5")
        touch(run / f"train_state_cell_{e:04d}.h5")
    touch(run / "history.csv")
    prune_checkpoints(str(run), keep, 4, best)
    assert sorted(os.listdir(run)) == sorted(kept + ["history.csv"])
    with pytest.raises(ValueError, match=r"keep must be one of .*got 'some'"):
        prune_checkpoints(str(run), "some", 4)
