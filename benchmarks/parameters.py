"""Parameter counts per part (backbone, FPN, RPN, heads) for every built-in backbone.

Seed 000 (Sartorius, EfficientNetV2-B0) says its Mask R-CNN "has over 3 times
less parameters than the conventional ResNet50 configuration". This prints
the counts behind that claim: each backbone with FPN_CLASSIF_FC_LAYERS_SIZE
128 and 1024, NUM_CLASSES 4 (background + 3 cell types), TOP_DOWN_PYRAMID_SIZE
256, and the ratio of each total to ResNet-50 with FC 1024 (Matterport's
setting). Counts do not depend on the image size, so models are built at
64x64 in inference mode (no image is run).

    python benchmarks/parameters.py                   # all backbones, 28x28 masks
    python benchmarks/parameters.py --mask-shape 56   # seed 000's later 56x56 masks
    python benchmarks/parameters.py --backbones resnet50 efficientnetv2-b0
"""

import argparse
import os
import tempfile
import time

import keras

import backbones
import mrcnn.model as modellib
from mrcnn.config import Config

DEFAULT_BACKBONES = ["resnet50", "resnet101", "efficientnetv2-b0", "efficientnetv2-b1",
                     "efficientnetv2-b2", "efficientnetv2-b3", "efficientnetv2-s",
                     "efficientnetv2-m", "efficientnetv2-l"]
REFERENCE = ("resnet50", 1024)


def config_for(backbone, fc_size, mask_size, num_classes):
    """A Config like seed 000's except for the backbone, FC size and mask size."""
    attrs = {
        "NAME": "params", "BACKBONE": backbone, "NUM_CLASSES": num_classes,
        "FPN_CLASSIF_FC_LAYERS_SIZE": fc_size, "TOP_DOWN_PYRAMID_SIZE": 256,
        "MASK_SHAPE": [mask_size, mask_size],
        "MINI_MASK_SHAPE": (max(56, mask_size), max(56, mask_size)),
        "IMAGES_PER_GPU": 1, "IMAGE_MIN_DIM": 64, "IMAGE_MAX_DIM": 64,
        "PRE_NMS_LIMIT": 200, "POST_NMS_ROIS_TRAINING": 50, "POST_NMS_ROIS_INFERENCE": 50,
        "TRAIN_ROIS_PER_IMAGE": 32, "DETECTION_MAX_INSTANCES": 10,
        "RPN_ANCHOR_SCALES": (8, 16, 32, 64, 128),
    }
    return type("ParamsConfig", (Config,), attrs)()


def count(backbone, fc_size, mask_size, num_classes, model_dir):
    """Parameter counts of one configuration (MaskRCNN.parameter_counts())."""
    config = config_for(backbone, fc_size, mask_size, num_classes)
    counts = modellib.MaskRCNN("inference", config, model_dir).parameter_counts()
    keras.backend.clear_session()
    return counts


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backbones", nargs="+", default=DEFAULT_BACKBONES,
                        choices=[b for b in backbones.available() if b != "small-cnn"])
    parser.add_argument("--fc-sizes", nargs="+", type=int, default=[128, 1024])
    parser.add_argument("--mask-shape", type=int, default=28)
    parser.add_argument("--num-classes", type=int, default=4)
    args = parser.parse_args(argv)

    rows = {}
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as model_dir:
        reference = count(*REFERENCE, args.mask_shape, args.num_classes, model_dir)
        for backbone in args.backbones:
            for fc in args.fc_sizes:
                if (backbone, fc) == REFERENCE:
                    rows[backbone, fc] = reference
                else:
                    rows[backbone, fc] = count(backbone, fc, args.mask_shape,
                                               args.num_classes, model_dir)

    print(f"Parameters per part; NUM_CLASSES {args.num_classes}, TOP_DOWN_PYRAMID_SIZE 256, "
          f"MASK_SHAPE {args.mask_shape}x{args.mask_shape}; ratio = total / total of "
          f"{REFERENCE[0]} with FC {REFERENCE[1]}")
    header = (f"{'backbone':20} {'FC':>5} {'backbone':>12} {'fpn':>11} {'rpn':>11} "
              f"{'heads':>12} {'total':>12} {'ratio':>6}")
    print(header)
    print("-" * len(header))
    for (backbone, fc), c in rows.items():
        print(f"{backbone:20} {fc:5d} {c['backbone']:12,d} {c['fpn']:11,d} {c['rpn']:11,d} "
              f"{c['heads']:12,d} {c['total']:12,d} {c['total'] / reference['total']:6.3f}")
    seed = rows.get(("efficientnetv2-b0", 128))
    if seed is not None:
        ratio = reference["total"] / seed["total"]
        print(f"\nseed 000 (efficientnetv2-b0, FC 128): {seed['total']:,} parameters; "
              f"{REFERENCE[0]} (FC {REFERENCE[1]}): {reference['total']:,}; "
              f"{ratio:.2f}x fewer ({'at most' if 3 * seed['total'] <= reference['total'] else 'MORE than'} "
              f"a third)")
    print(f"({len(rows)} configurations built in {time.perf_counter() - start:.0f} s on "
          f"{keras.backend.backend()}, {os.cpu_count()} CPUs)")


if __name__ == "__main__":
    main()
