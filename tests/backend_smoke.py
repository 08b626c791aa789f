"""Short training run on the backend named by KERAS_BACKEND; prints JSON losses.

Run by tests/test_backends.py in a subprocess per backend:
    KERAS_BACKEND=torch python tests/backend_smoke.py OUT_DIR
"""

import json
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))

import keras  # noqa: E402
import numpy as np  # noqa: E402

import mrcnn.model as modellib  # noqa: E402
from model_helpers import make_config, shapes  # noqa: E402


def main(out_dir):
    keras.utils.set_random_seed(0)
    config = make_config(STEPS_PER_EPOCH=6, VALIDATION_STEPS=1, LEARNING_RATE=0.02,
                         TRAIN_BN=True)
    data = shapes(2, seed=5)  # the same two images every step: the loss must fall
    model = modellib.MaskRCNN("training", config, out_dir)
    history = model.train(data, data, config.LEARNING_RATE, epochs=3, layers="all",
                          verbose=0)
    infer = modellib.MaskRCNN("inference", make_config(IMAGES_PER_GPU=2), out_dir)
    infer.load_weights(model.find_last())
    results = infer.detect([data.load_image(0), data.load_image(1)])
    print("RESULT " + json.dumps({
        "backend": keras.backend.backend(),
        "loss": history.history["loss"],
        "detections": [int(r["rois"].shape[0]) for r in results],
        "mask_shapes": [list(r["masks"].shape) for r in results],
    }))


if __name__ == "__main__":
    main(sys.argv[1])
