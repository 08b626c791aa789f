"""Real nuclei: ours vs torchvision's Mask R-CNN vs Cellpose 3, all from random weights.

    pip download --no-deps stardist==0.9.2 -d /tmp/wheels     # carries a real DSB 2018 image
    python -m venv /work/.tvenv && /work/.tvenv/bin/pip install torch==2.14.1 \\
        torchvision==0.29.1 numpy cellpose==3.1.1.2
    python benchmarks/real_nuclei.py --stardist /tmp/wheels/stardist-0.9.2-*.whl \\
        --peer-python /work/.tvenv/bin/python
    python benchmarks/real_nuclei.py --image IMG.tif --mask LABELS.tif --folds-run 0,1,2,3
    python benchmarks/real_nuclei.py ... -- --optimizer sgd      # flags after -- go to train.py
    python benchmarks/real_nuclei.py ... --methods ours,cellpose --cellpose-augment \
        -- --tta dihedral --overlaps nested                       # each at its best setting

The data: one real fluorescence image of nuclei with its instance labels,
by default the 512x512 image of the 2018 Data Science Bowl (Caicedo et al.,
Nature Methods 2019) that the ``stardist`` wheel carries
(``stardist/data/images/img2d.tif``, ``mask2d.tif``; 125 nuclei of 25-750
px). It is cut into a ``--grid`` x ``--grid`` grid of tiles (default 2x2:
four 256x256 images), written as a Sartorius-format folder (``train.csv``
with run-length masks, ``train/<id>.png``, one class); one tile is held out
per fold (``--folds-run``, k = the number of tiles) and the others train.

All three methods see the same training tiles and as many training images:
ours runs ``samples/cell/train.py`` with ResNet50-FPN and this task's
settings (``DEFAULT_TRAIN_ARGV``: 192px crops with flips and 90-degree turns,
10 epochs x 60 steps x 2 crops = 1200 crops, anchors 8-128 px, the training
tiles' mean pixel (train.py's default with --data), each residual block
started as the identity (train.py's default for ResNet-50/101 from random weights;
``-- --no-zero-init-residual`` gives Matterport's initialisation), no
per-epoch scoring: the held-out tile never chooses a checkpoint); the peers
get the work folder ``benchmarks/peer_cell.py`` exports from those flags:
torchvision (``peer_torchvision_cell.py``, ``maskrcnn_resnet50_fpn``, ours'
crops in ours' order, its bottlenecks started as the identity when ours'
are; SGD lr 0.01 by default, its best from scratch in our measurements) and
Cellpose 3 (``peer_cellpose.py``: its own network, flows,
augmentation and schedule, 1200 crops of the training tiles). Every
method's instances on the held-out tile are scored alike: the same
post-processing (score >= 0.5, overlaps removed, ``--min-area`` 15 px) and
``mrcnn.evaluation.evaluate`` (the DSB 2018 mAP-IoU). Test-time augmentation
on both sides: ``-- --tta dihedral`` scores ours' checkpoint through the 8
turns and flips (train.py --tta), ``--cellpose-augment`` adds a row of
Cellpose's own (``eval(augment=True)``). The last line is
``ours=... torchvision=... cellpose=...`` (mean mAP-IoU over the folds run,
``cellpose_augment=...`` too);
WORK/results.json holds the per-fold table.

Single runs spread (up to 0.08 on a tile, for ours and for Cellpose alike):
compare means over runs. ``-- --seed S`` gives another run: it changes the
order in which the split deals the tiles to the folds (each fold prints its
held-out tile), the crop plan, and the peers' initial weights; run all the
folds of a seed to hold out every tile once.
"""

import argparse
import csv
import glob
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import zipfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
if ROOT not in sys.path:            # mrcnn from this checkout without `pip install -e .`
    sys.path.insert(0, ROOT)
STARDIST_IMAGE = "stardist/data/images/img2d.tif"
STARDIST_MASK = "stardist/data/images/mask2d.tif"
DEFAULT_TRAIN_ARGV = ["--backbone", "resnet50", "--classes", "single", "--crop-size", "192",
                      "--epochs", "10", "--steps-per-epoch", "60", "--validation-steps", "1",
                      "--augment", "flips", "--anchor-scales", "8,16,32,64,128",
                      "--min-area", "15", "--score-every", "0", "--keep", "last"]
SMOKE_TRAIN_ARGV = ["--backbone", "small-cnn", "--classes", "single", "--crop-size", "64",
                    "--epochs", "1", "--steps-per-epoch", "2", "--validation-steps", "1",
                    "--anchor-scales", "8,16,32,64,128", "--min-area", "15",
                    "--score-every", "0", "--detection-max-instances", "50"]


def load_peer_cell():
    spec = importlib.util.spec_from_file_location("peer_cell", os.path.join(HERE, "peer_cell.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# -------------------------------------------------------------------------------- the data
def stardist_files(source, into):
    """(image path, mask path) of the DSB 2018 image inside a stardist wheel or package folder.

    Args:
        source: a ``stardist-*.whl`` file, or a folder that holds
            ``stardist/data/images/`` (site-packages) or is the package.
        into: folder to extract a wheel's two files to.

    Raises:
        SystemExit: the files are not there.
    """
    if os.path.isfile(source):
        try:
            with zipfile.ZipFile(source) as wheel:
                os.makedirs(into, exist_ok=True)
                return tuple(wheel.extract(name, into) for name in (STARDIST_IMAGE, STARDIST_MASK))
        except (zipfile.BadZipFile, KeyError) as error:
            raise SystemExit(f"--stardist {source!r}: not a stardist wheel with "
                             f"{STARDIST_IMAGE} ({error})") from None
    for base in (source, os.path.dirname(os.path.abspath(source))):
        paths = tuple(os.path.join(base, name) for name in (STARDIST_IMAGE, STARDIST_MASK))
        if all(os.path.isfile(p) for p in paths):
            return paths
    raise SystemExit(f"--stardist {source!r}: no {STARDIST_IMAGE} there; give the wheel "
                     f"(pip download --no-deps stardist==0.9.2) or its site-packages folder")


def read_pair(image_path, mask_path):
    """The image as gray uint8 [H, W] (min-max stretched) and its int32 instance labels [H, W].

    Raises:
        SystemExit: unreadable files, shapes that differ, or no instances.
    """
    import skimage.io

    try:
        image, labels = skimage.io.imread(image_path), skimage.io.imread(mask_path)
    except (OSError, ValueError) as error:
        raise SystemExit(f"cannot read {image_path!r} / {mask_path!r}: {error}") from None
    image = np.asarray(image, np.float64)
    if image.ndim == 3:
        image = image.mean(-1)
    labels = np.asarray(labels)
    if image.ndim != 2 or labels.shape != image.shape:
        raise SystemExit(f"expected a 2-D image and labels of its shape, got {image.shape} and "
                         f"{labels.shape}")
    if not np.issubdtype(labels.dtype, np.integer) or labels.max() < 1:
        raise SystemExit(f"{mask_path!r}: expected integer instance labels (0 = background), "
                         f"got {labels.dtype} with max {labels.max()}")
    lo, hi = float(image.min()), float(image.max())
    scaled = (image - lo) / max(hi - lo, 1e-12) * 255.0
    return np.round(scaled).astype(np.uint8), labels.astype(np.int32)


def tiles(image, labels, grid):
    """[(tile id, image tile, label tile)] of a grid x grid cut, row by row.

    Each tile's labels are its own: a nucleus the cut crosses is an instance
    in each tile it reaches (the part inside).
    """
    h, w = image.shape
    th, tw = h // grid, w // grid
    out = []
    for r in range(grid):
        for c in range(grid):
            window = (slice(r * th, (r + 1) * th), slice(c * tw, (c + 1) * tw))
            out.append((f"tile{r}{c}", image[window], labels[window]))
    return out


def write_sartorius(folder, parts):
    """train.csv (one row per instance, row-major RLE, empty cell_type) and train/<id>.png."""
    import skimage.io

    from mrcnn.data.rle import rle_encode

    os.makedirs(os.path.join(folder, "train"), exist_ok=True)
    with open(os.path.join(folder, "train.csv"), "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["id", "annotation", "width", "height", "cell_type"])
        for tile_id, image, labels in parts:
            skimage.io.imsave(os.path.join(folder, "train", tile_id + ".png"), image,
                              check_contrast=False)
            h, w = labels.shape
            for value in np.unique(labels[labels > 0]):
                writer.writerow([tile_id, rle_encode(labels == value), w, h, ""])
    return folder


# -------------------------------------------------------------------------------- the runs
def run_cellpose(python, work, threads, sgd=False, augment=False):
    """peer_cellpose.py in `python` (``augment``: also with its test-time augmentation); its run.json."""
    command = [python, os.path.join(HERE, "peer_cellpose.py"), "--work", work,
               "--threads", str(threads)] + (["--sgd"] if sgd else []) + \
        (["--augment"] if augment else [])
    print("cellpose:", " ".join(command), flush=True)
    proc = subprocess.run(command, stderr=subprocess.PIPE, text=True)
    if proc.returncode:
        raise SystemExit(f"peer_cellpose.py failed (exit {proc.returncode}); its stderr ends:\n"
                         f"{proc.stderr[-3000:]}")
    with open(os.path.join(work, "cellpose", "run.json")) as f:
        return json.load(f)


def run_fold(peer_cell, data, work, fold, k, train_argv, args):
    """One held-out tile: the chosen methods trained and scored; rows for the table."""
    argv = ["--data", data, "--folds", str(k), "--fold", str(fold)] + train_argv
    if args.methods == ["ours"]:       # no peer: any train.py flags (e.g. --augment cell)
        module = peer_cell.load_train_module()
        targs = module.build_parser().parse_args(argv)
        _, val = module.load_data(targs)
        config = module.make_config(targs, val.class_names)[0]
        settings = {"images_seen": int(targs.epochs) * int(config.STEPS_PER_EPOCH)
                    * int(config.BATCH_SIZE), "ours": {"backbone": config.BACKBONE}}
    else:
        settings, val, module, targs = peer_cell.export(work, argv, args.threads,
                                                        args.peer_optimizer, args.peer_lr)
    post = module.postprocess_config(val.class_names, targs.min_area, targs.overlaps)
    base = {"images_seen": settings["images_seen"]}
    rows = []
    if "ours" in args.methods:
        ours = peer_cell.run_ours(module, work, argv)
        rows.append(dict(base, method="mrcnn (ours)", backbone=settings["ours"]["backbone"],
                         train_s=ours["train_s"], steps_total_s=ours["steps_total_s"],
                         step_s=ours["step_s_median"], scores=ours["scores"]))
    if "torchvision" in args.methods:
        peer = peer_cell.run_peer(args.peer_python, work, args.peer_optimizer, args.peer_lr,
                                  args.threads)
        scores = peer_cell.score_peer(work, val, post, settings["num_classes"])
        rows.append(dict(base, method=f"torchvision {peer['optimizer']['name']}",
                         backbone=peer["backbone"], train_s=peer["train_s"],
                         steps_total_s=peer["steps_total_s"], step_s=peer["step_s_median"],
                         scores=scores))
    if "cellpose" in args.methods:
        cp = run_cellpose(args.peer_python, work, args.threads, args.cellpose_sgd,
                          args.cellpose_augment)
        segmentations = [("cellpose", "")] + \
            ([("cellpose_augment", " augment")] if args.cellpose_augment else [])
        for folder, tag in segmentations:
            scores = peer_cell.score_peer(work, val, post, settings["num_classes"], folder=folder)
            rows.append(dict(base, method=f"cellpose {cp['cellpose']} {cp['optimizer']['name']}"
                             f"{tag}", backbone=cp["backbone"], images_seen=cp["images_seen"],
                             train_s=cp["train_s"], steps_total_s=cp["steps_total_s"],
                             step_s=cp["step_s_mean"], scores=scores))
    return rows, val


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, allow_abbrev=False,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    source = p.add_mutually_exclusive_group()
    source.add_argument("--stardist", default=None,
                        help="a stardist wheel (pip download --no-deps stardist==0.9.2) or "
                             "the site-packages folder holding stardist/: its DSB 2018 image")
    source.add_argument("--image", default=None, help="an image of nuclei (needs --mask)")
    p.add_argument("--mask", default=None, help="its instance labels (0 = background)")
    p.add_argument("--grid", type=int, default=2, help="cut into GRID x GRID tiles (default 2)")
    p.add_argument("--folds-run", default="0", help="held-out tiles to run, e.g. 0,1,2,3")
    p.add_argument("--methods", default="ours,torchvision,cellpose",
                   help="comma-separated: ours, torchvision, cellpose")
    p.add_argument("--work", default=os.path.join(tempfile.gettempdir(), "mrcnn_real_nuclei"))
    p.add_argument("--peer-python", default=os.environ.get("PEER_PYTHON"),
                   help="a Python with torch, torchvision and cellpose 3 (default $PEER_PYTHON)")
    p.add_argument("--peer-optimizer", choices=("adamw", "sgd"), default="sgd",
                   help="torchvision's optimizer (default sgd, lr 0.01)")
    p.add_argument("--peer-lr", type=float, default=None)
    p.add_argument("--cellpose-sgd", action="store_true",
                   help="Cellpose with SGD at 0.2 (default: its AdamW at 0.005)")
    p.add_argument("--cellpose-augment", action="store_true",
                   help="also score Cellpose with its test-time augmentation (eval(augment="
                        "True)), the peer's best setting next to ours' `-- --tta dihedral`")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--smoke", action="store_true",
                   help="tiny training (" + " ".join(SMOKE_TRAIN_ARGV) + ")")
    args, train_argv = p.parse_known_args(argv)
    train_argv = [a for a in train_argv if a != "--"]
    args.methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = set(args.methods) - {"ours", "torchvision", "cellpose"}
    if unknown:
        raise SystemExit(f"--methods: unknown {sorted(unknown)}; expected ours, torchvision, "
                         f"cellpose")
    if set(args.methods) - {"ours"} and not args.peer_python:
        raise SystemExit("torchvision and cellpose run in --peer-python (a Python with torch, "
                         "torchvision and cellpose==3.1.1.2) or $PEER_PYTHON; or --methods ours")
    if args.grid < 1 or args.grid * args.grid < 2:
        raise SystemExit(f"--grid must give at least 2 tiles, got {args.grid}")
    k = args.grid * args.grid
    try:
        folds = [int(v) for v in args.folds_run.split(",") if v.strip()]
    except ValueError:
        raise SystemExit(f"--folds-run: expected tile numbers like 0,1, got "
                         f"{args.folds_run!r}") from None
    if not folds or min(folds) < 0 or max(folds) >= k:
        raise SystemExit(f"--folds-run: each fold must lie in [0, {k - 1}], got {args.folds_run!r}")

    work = os.path.abspath(args.work)
    if args.image:
        if not args.mask:
            raise SystemExit("--image needs --mask (its instance labels)")
        image_path, mask_path = args.image, args.mask
    elif args.stardist:
        image_path, mask_path = stardist_files(args.stardist, os.path.join(work, "source"))
    else:
        found = sorted(glob.glob(os.path.join(tempfile.gettempdir(), "wheels", "stardist-*.whl")))
        if not found:
            raise SystemExit("no data: pass --stardist WHEEL (pip download --no-deps "
                             "stardist==0.9.2 -d /tmp/wheels) or --image/--mask")
        image_path, mask_path = stardist_files(found[-1], os.path.join(work, "source"))
    image, labels = read_pair(image_path, mask_path)
    parts = tiles(image, labels, args.grid)
    data = write_sartorius(os.path.join(work, "data"), parts)
    print(f"{image_path}: {image.shape[0]}x{image.shape[1]}, {len(np.unique(labels)) - 1} "
          f"instances, {k} tiles of {parts[0][1].shape[0]}x{parts[0][1].shape[1]}", flush=True)
    train_argv = (SMOKE_TRAIN_ARGV if args.smoke else DEFAULT_TRAIN_ARGV) + train_argv

    peer_cell = load_peer_cell()
    all_rows = []
    for fold in folds:
        rows, val = run_fold(peer_cell, data, os.path.join(work, f"fold{fold}"), fold, k,
                             train_argv, args)
        held = val.image_info[0]["id"]
        for row in rows:
            row.update(fold=fold, held_out=held)
        all_rows += rows
        print(f"\nfold {fold} (held-out tile {held}):")
        print(peer_cell.table(rows, list(val.class_names[1:])))
    means = {}
    for row in all_rows:
        name = row["method"].split()[0].replace("mrcnn", "ours")
        name += "_augment" if row["method"].endswith(" augment") else ""
        means.setdefault(name, []).append(float(row["scores"]["map_iou"]))
    results = [dict({k_: v for k_, v in r.items() if k_ != "scores"},
                    scores=peer_cell._plain(r["scores"])) for r in all_rows]
    with open(os.path.join(work, "results.json"), "w") as f:
        json.dump({"train_argv": train_argv, "folds": folds, "runs": results}, f, indent=1)
    print(" ".join(f"{m}={np.mean(v):.4f}" for m, v in means.items())
          + f" folds={','.join(map(str, folds))}")
    return results


if __name__ == "__main__":
    sys.exit(0 if main() is not None else 1)
