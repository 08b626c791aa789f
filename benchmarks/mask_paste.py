"""Validation mAP-IoU of trained cell models with each mask paste ("centers", "grid").

    python benchmarks/mask_paste.py logs/cell20261130T141340 [more run folders]
    python benchmarks/mask_paste.py RUN -- --synthetic-images 6 --folds 3   # train.py's data flags

`detect()` places each predicted mask in its box by Config.DETECTION_MASK_PASTE:
"centers" (Matterport's pixel-centre resize) or "grid" (mask row i where
ROIAlign sampled row i; `mrcnn.inference.molding.grid_paste_boxes`). For each
run folder of `samples/cell/train.py` this loads the last checkpoint, detects
the validation fold that train.py's data flags (after ``--``; default: the
main command's) give, with either paste, and scores both with the sample's
post-processing and metric (`mrcnn.evaluation.tune_postprocess` at the
configured mask threshold). Prints a table and, last, one line
``run=... centers=... grid=...`` per run.
"""

import argparse
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def last_checkpoint(run):
    names = sorted(n for n in os.listdir(run) if n.startswith("mask_rcnn_") and n.endswith(".h5"))
    if not names:
        raise SystemExit(f"{run}: no mask_rcnn_*.h5 checkpoint (a samples/cell/train.py run "
                         f"folder was expected)")
    return os.path.join(run, names[-1])


def score_run(train, args, val, run):
    import mrcnn.model as modellib
    from mrcnn.evaluation import tune_postprocess

    config = train.make_config(args, val.class_names)[1]
    model = modellib.MaskRCNN("inference", config, os.path.dirname(os.path.abspath(run)))
    model.load_weights(last_checkpoint(run))
    gts = [val.load_mask(i) for i in val.image_ids]
    base = train.postprocess_config(val.class_names)
    scores = {}
    for paste in ("centers", "grid"):
        model.config.DETECTION_MASK_PASTE = paste
        preds = [model.detect([val.load_image(i)], soft_masks=True, sparse=True)[0]
                 for i in val.image_ids]
        _, table = tune_postprocess(preds, gts, {"mask_threshold": [
            config.DETECTION_MASK_THRESHOLD]}, base=base, class_names=val.class_names)
        scores[paste] = float(table[0]["score"])
    return scores


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    data_flags = []
    if "--" in argv:
        cut = argv.index("--")
        argv, data_flags = argv[:cut], argv[cut + 1:]
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("runs", nargs="+", help="samples/cell/train.py run folders")
    args = p.parse_args(argv)
    for run in args.runs:
        if not os.path.isdir(run):
            raise SystemExit(f"{run}: not a folder (give samples/cell/train.py run folders)")
    if HERE not in sys.path:
        sys.path.insert(0, HERE)
    from peer_cell import load_train_module

    train = load_train_module()
    train_args = train.build_parser().parse_args(data_flags)
    _, val = train.load_data(train_args)
    rows = [(run, score_run(train, train_args, val, run)) for run in args.runs]
    print(f"\nvalidation mAP-IoU, {len(val.image_ids)} images")
    print(f"{'run':40s}{'centers':>10s}{'grid':>10s}{'gain':>10s}")
    for run, s in rows:
        print(f"{os.path.basename(os.path.normpath(run)):40s}{s['centers']:10.4f}"
              f"{s['grid']:10.4f}{s['grid'] - s['centers']:+10.4f}")
    for run, s in rows:
        print(f"run={os.path.basename(os.path.normpath(run))} centers={s['centers']:.4f} "
              f"grid={s['grid']:.4f}")
    return dict(rows)


if __name__ == "__main__":
    main()
