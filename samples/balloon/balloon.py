"""Matterport's ``samples/balloon/balloon.py`` on mrcnn: the "train on your own dataset" template.

A dataset annotated with the VGG Image Annotator (VIA): ``<dataset>/train/`` and
``<dataset>/val/``, each with its images and VIA's ``via_region_data.json``
(polygons; `mrcnn.datasets.via` also draws rects, circles and ellipses).
Matterport's commands::

    python3 samples/balloon/balloon.py train --dataset=/path/to/balloon/dataset --weights=coco
    python3 samples/balloon/balloon.py train --dataset=/path/to/balloon/dataset --weights=last
    python3 samples/balloon/balloon.py splash --weights=last --image=/path/to/image.jpg
    python3 samples/balloon/balloon.py splash --weights=last --video=<file name>

``splash`` writes ``splash_<time>.png`` (or ``.avi``): the image in gray, the
detected objects in colour. Its module is what users copy for their own
classes: `BalloonConfig`, `BalloonDataset.load_balloon(dataset_dir, subset)`,
`train(model, dataset_dir)`, `color_splash(image, mask)`,
`detect_and_color_splash(model, image_path, video_path)`.

Added to Matterport's: ``--weights=none`` (random weights: all layers train,
not only the heads), ``--epochs`` and ``--steps-per-epoch``, ``--backbone``
and ``--image-size`` for small runs; missing weights and files end the
command with a message. ``--video`` needs OpenCV (``opencv-python``), as in
Matterport.
"""

import argparse
import datetime
import os
import sys
import tempfile

import numpy as np

# This checkout's library first, installed or not (Matterport's samples append their
# ROOT_DIR the same way): `python3 samples/...` then runs the code beside the script.
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from mrcnn import model as modellib
from mrcnn.cli_settings import run_size_settings
from mrcnn.config import Config
from mrcnn.datasets.via import ViaDataset
from mrcnn.weights import load_sample_weights, sample_weights_line

DEFAULT_LOGS_DIR = os.path.join(ROOT, "logs")
# Where Matterport kept the COCO-trained weights; found there first by --weights=coco.
COCO_WEIGHTS_PATH = os.path.join(ROOT, "mask_rcnn_coco.h5")


class BalloonConfig(Config):
    """Matterport's configuration for the balloon data set."""

    NAME = "balloon"
    IMAGES_PER_GPU = 2
    NUM_CLASSES = 1 + 1      # background + balloon
    STEPS_PER_EPOCH = 100
    DETECTION_MIN_CONFIDENCE = 0.9


class BalloonDataset(ViaDataset):
    """A VIA-annotated folder of balloons (one class)."""

    def load_balloon(self, dataset_dir, subset):
        """Load ``dataset_dir/<subset>/`` (its images and ``via_region_data.json``).

        Images without a region are left out, as in Matterport.

        Raises:
            ValueError: a subset other than "train" or "val" (and see `ViaDataset.load_via`).
        """
        if subset not in ("train", "val"):
            raise ValueError(f"subset must be 'train' or 'val', got {subset!r}")
        folder = os.path.join(os.fspath(dataset_dir), subset)
        first = len(self.image_info)
        self.load_via(os.path.join(folder, "via_region_data.json"), folder,
                      class_name="balloon", source="balloon")
        self.image_info[first:] = [info for info in self.image_info[first:] if info["polygons"]]

    def image_reference(self, image_id):
        """The image's path."""
        return self.image_info[image_id]["path"]


def load_datasets(dataset_dir):
    """The prepared training and validation sets of ``dataset_dir/train`` and ``/val``."""
    datasets = []
    for subset in ("train", "val"):
        dataset = BalloonDataset()
        dataset.load_balloon(dataset_dir, subset)
        dataset.prepare()
        datasets.append(dataset)
    return datasets


def train(model, dataset_dir, epochs=30, layers="heads"):
    """Train the model on ``dataset_dir/train``, validating on ``dataset_dir/val``
    (Matterport's: the heads only, 30 epochs, no augmentation)."""
    return _fit(model, *load_datasets(dataset_dir), epochs, layers)


def _fit(model, dataset_train, dataset_val, epochs, layers):
    print("Training network heads" if layers == "heads" else f"Training {layers} layers")
    return model.train(dataset_train, dataset_val, learning_rate=model.config.LEARNING_RATE,
                       epochs=epochs, layers=layers)


def color_splash(image, mask):
    """The image in gray, in colour where `mask` (bool ``[H, W, N]``) covers it.

    Returns:
        uint8 ``[H, W, 3]``.
    """
    import skimage.color

    image = np.asarray(image)
    gray = skimage.color.gray2rgb(skimage.color.rgb2gray(image)) * 255
    mask = np.asarray(mask)
    if mask.ndim == 3 and mask.shape[-1] > 0:
        covered = np.sum(mask, -1, keepdims=True) >= 1
        return np.where(covered, image, gray).astype(np.uint8)
    return gray.astype(np.uint8)


def _atomic_path(target):
    """A temporary path beside `target` with its extension (replaced into place when done)."""
    folder = os.path.dirname(os.path.abspath(target))
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".splash-", suffix=os.path.splitext(target)[1])
    os.close(fd)
    return tmp


def detect_and_color_splash(model, image_path=None, video_path=None):
    """Detect in an image (a file or URL) or a video and write the colour splash beside
    the current directory as ``splash_<time>.png`` / ``.avi``; return that file name."""
    import skimage.color
    import skimage.io

    if not (image_path or video_path):
        raise ValueError("give image_path or video_path")
    stamp = f"{datetime.datetime.now():%Y%m%dT%H%M%S}"
    if image_path:
        print(f"Running on {image_path}")
        image = skimage.io.imread(image_path)
        if image.ndim == 2:
            image = skimage.color.gray2rgb(image)
        image = image[..., :3]
        r = model.detect([image], verbose=1)[0]
        file_name = f"splash_{stamp}.png"
        tmp = _atomic_path(file_name)
        try:
            skimage.io.imsave(tmp, color_splash(image, r["masks"]), check_contrast=False)
            os.replace(tmp, file_name)
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)
    else:
        file_name = _splash_video(model, video_path, f"splash_{stamp}.avi")
    print("Saved to", file_name)
    return file_name


def _splash_video(model, video_path, file_name):
    try:
        import cv2
    except ImportError:
        raise SystemExit("--video needs OpenCV: pip install opencv-python-headless") from None
    capture = cv2.VideoCapture(video_path)
    if not capture.isOpened():
        raise FileNotFoundError(f"cannot open the video {video_path!r}")
    width = int(capture.get(cv2.CAP_PROP_FRAME_WIDTH))
    height = int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT))
    fps = capture.get(cv2.CAP_PROP_FPS) or 25.0
    tmp = _atomic_path(file_name)
    writer = cv2.VideoWriter(tmp, cv2.VideoWriter_fourcc(*"MJPG"), fps, (width, height))
    count = 0
    try:
        while True:
            ok, frame = capture.read()
            if not ok:
                break
            rgb = frame[..., ::-1]                     # OpenCV's BGR to RGB
            r = model.detect([rgb], verbose=0)[0]
            writer.write(np.ascontiguousarray(color_splash(rgb, r["masks"])[..., ::-1]))
            count += 1
        writer.release()
        os.replace(tmp, file_name)
    finally:
        capture.release()
        if os.path.exists(tmp):
            os.remove(tmp)
    print(f"{count} frames")
    return file_name


# ------------------------------------------------------------------- command line
def build_parser():
    p = argparse.ArgumentParser(description="Train Mask R-CNN to detect balloons.")
    p.add_argument("command", metavar="<command>", choices=("train", "splash"),
                   help="'train' or 'splash'")
    p.add_argument("--dataset", metavar="/path/to/balloon/dataset/",
                   help="directory of the Balloon dataset")
    p.add_argument("--weights", required=True, metavar="/path/to/weights.h5",
                   help="path to a weights .h5 file, or 'coco', 'imagenet', 'last', 'none'")
    p.add_argument("--logs", default=DEFAULT_LOGS_DIR, metavar="/path/to/logs/",
                   help="logs and checkpoints directory (default=logs/)")
    p.add_argument("--image", metavar="path or URL to image",
                   help="image to apply the color splash effect on")
    p.add_argument("--video", metavar="path or URL to video",
                   help="video to apply the color splash effect on")
    p.add_argument("--epochs", type=int, default=30, help="train: epochs (default 30)")
    p.add_argument("--steps-per-epoch", type=int, default=None,
                   help="Config.STEPS_PER_EPOCH (default 100)")
    p.add_argument("--backbone", default=None, help="Config.BACKBONE (default resnet101)")
    p.add_argument("--image-size", type=int, default=None,
                   help="square inputs of this side (IMAGE_MIN_DIM = IMAGE_MAX_DIM; "
                        "default 800/1024)")
    return p


def make_config(args, inference=False):
    attrs = run_size_settings(args)
    if args.image_size is not None:
        attrs.update(IMAGE_MIN_DIM=args.image_size, IMAGE_MAX_DIM=args.image_size)
    if inference:
        attrs.update(GPU_COUNT=1, IMAGES_PER_GPU=1)
    return type("InferenceConfig" if inference else "TrainConfig", (BalloonConfig,), attrs)()


def load_start_weights(model, spec):
    """--weights: 'coco', 'imagenet', 'last', 'none' or a path (see load_sample_weights)."""
    try:
        print(sample_weights_line(load_sample_weights(model, spec, coco_path=COCO_WEIGHTS_PATH)))
    except (FileNotFoundError, ValueError, OSError) as error:
        raise SystemExit(f"--weights={spec}: {error}") from None


def main(argv=None):
    args = build_parser().parse_args(argv)
    if args.command == "train" and not args.dataset:
        raise SystemExit("train needs --dataset=/path/to/balloon/dataset/")
    if args.command == "splash" and not (args.image or args.video):
        raise SystemExit("splash needs --image=<file or URL> or --video=<file>")
    print("Weights:", args.weights, "\nDataset:", args.dataset, "\nLogs:", args.logs)
    inference = args.command == "splash"
    if not inference:       # the data first: a wrong --dataset ends before a model is built
        try:
            datasets = load_datasets(args.dataset)
        except (FileNotFoundError, ValueError) as error:
            raise SystemExit(f"--dataset={args.dataset}: {error}") from None
    config = make_config(args, inference=inference)
    config.display()
    model = modellib.MaskRCNN(mode="inference" if inference else "training", config=config,
                              model_dir=args.logs)
    load_start_weights(model, args.weights)
    if inference:
        return detect_and_color_splash(model, image_path=args.image, video_path=args.video)
    return _fit(model, *datasets, args.epochs,
                "all" if args.weights.lower() == "none" else "heads")

if __name__ == "__main__":
    main()
