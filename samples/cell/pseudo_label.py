"""Pseudo-label unlabeled cell images with a trained model (train.csv format).

    python samples/cell/pseudo_label.py --weights last --model-dir logs \\
        --images $DATA/train_semi_supervised --out pseudo.csv --min-score 0.8

Each image is predicted (its run folder's config.json rebuilds the model, as
in predict.py); the instances scoring at least --min-score are kept, the
higher score taking the pixels two of them share, and one left with fewer
than --min-area pixels (default: per cell type, shsy5y 75, astro 150, cort
75) or more than --max-area is dropped (`mrcnn.datasets.pseudo_labels`).
The image's cell type is the class whose kept cells' scores sum highest
(empty for a single-class model). The rows are written in the Sartorius
`train.csv` format (row-major RLE), atomically; an image without a kept cell
gets no row. Fine-tune on them with
``train.py --pseudo-labels pseudo.csv`` (the images are read from
``<--data>/train_semi_supervised``).
"""

import argparse
import importlib.util
import os
import sys
import time

# This checkout's library first, installed or not (Matterport's samples append their
# ROOT_DIR the same way): `python3 samples/...` then runs the code beside the script.
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from mrcnn.datasets.pseudo_labels import (image_cell_type, pseudo_label_rows,
                                          select_pseudo_labels, write_pseudo_labels)
from mrcnn.inference import SARTORIUS_MIN_AREA, detect_fitted


def _load_predict():
    """samples/cell/predict.py (model loading, image reading), beside this script."""
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "predict.py")
    spec = importlib.util.spec_from_file_location("cell_predict", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


predict = _load_predict()


def build_parser():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--images", required=True,
                   help="folder of unlabeled images, e.g. $DATA/train_semi_supervised")
    p.add_argument("--weights", default="last",
                   help="checkpoint: last (newest under --model-dir), best (best.json of the "
                        "newest run under --model-dir that ranked its checkpoints) or a path "
                        "to an .h5 file")
    p.add_argument("--model-dir", default="logs",
                   help="where --weights last / best look (default ./logs)")
    p.add_argument("--config", default=None,
                   help="config.json of the run (default: the one beside the checkpoint)")
    p.add_argument("--out", default="pseudo.csv", help="output CSV (default pseudo.csv)")
    p.add_argument("--min-score", type=float, default=0.8,
                   help="lowest score of a kept cell (default 0.8)")
    p.add_argument("--min-area", type=int, default=None,
                   help="fewest pixels of a kept cell (default per cell type: shsy5y 75, "
                        "astro 150, cort 75; 75 for a single class)")
    p.add_argument("--max-area", type=int, default=None, help="most pixels of a kept cell")
    p.add_argument("--limit", type=int, default=None, help="only the first N images")
    p.add_argument("--append", action="store_true",
                   help="add to an existing --out instead of replacing it")
    return p


def load_model(args):
    """The inference model of --weights, through predict.py's loader."""
    options = argparse.Namespace(weights=[args.weights], model_dir=args.model_dir,
                                 config=args.config, min_score=str(args.min_score), tta=None,
                                 image_sizes=getattr(args, "image_sizes", None))
    return predict.load_models(options)[0]


def min_area_of(args, cell_type):
    if args.min_area is not None:
        return args.min_area
    return SARTORIUS_MIN_AREA.get(cell_type, 75)


def main(argv=None):
    args = build_parser().parse_args(argv)
    if not 0 <= args.min_score <= 1:
        raise SystemExit(f"--min-score must be in [0, 1], got {args.min_score}")
    predict.check_output(args.out)
    files = predict.list_images(args.images)[:args.limit]
    other = [f for f in files if not f.lower().endswith(".png")]
    if other:
        raise ValueError(f"{len(other)} image(s) of {args.images} are not PNG files, e.g. "
                         f"{other[0]!r}: the pseudo-labels are loaded as <id>.png "
                         f"(SartoriusDataset.load_pseudo_labels); convert them first")
    sizes, bad = predict.check_images(files)
    if bad:
        raise ValueError(predict.bad_images_message(bad, len(files), args.images))
    args.image_sizes = list(sizes.values())
    model = load_model(args)
    class_names = predict._class_names(model.config)
    rows, used = [], 0
    t0 = time.time()
    for k, path in enumerate(files):
        image_id = predict.image_id_of(path)
        image = predict.read_image(path)
        result = detect_fitted(model, [image], verbose=0)[0]   # own-size input, as predict.py
        confident = select_pseudo_labels(result, min_score=args.min_score)
        cell_type = image_cell_type(confident, class_names)
        kept = select_pseudo_labels(result, min_score=args.min_score,
                                    min_area=min_area_of(args, cell_type),
                                    max_area=args.max_area)
        image_rows = pseudo_label_rows(image_id, kept["masks"], cell_type)
        rows += image_rows
        used += bool(image_rows)
        print(f"[{k + 1}/{len(files)}] {image_id}: {len(image_rows)} cells kept of "
              f"{len(result['scores'])} detected ({cell_type or 'cell type unknown'})")
    total = write_pseudo_labels(args.out, rows, append=args.append)
    print(f"wrote {args.out}: {len(rows)} pseudo-labelled cells on {used} of {len(files)} "
          f"images ({total} rows in the file; {time.time() - t0:.1f}s)")
    return args.out


if __name__ == "__main__":
    main()
