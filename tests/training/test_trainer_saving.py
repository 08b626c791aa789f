"""The training graph saved whole (.keras) loads back with its weights and loss weights."""

import keras
import numpy as np

from model_helpers import make_config
from mrcnn import model as modellib
from mrcnn.training.trainer import LOSS_NAMES, MASK_DICE_LOSS, MaskRCNNTrainer


def test_training_model_round_trips_through_a_keras_file(tmp_path):
    weights = {"rpn_class_loss": 2.0, "mrcnn_mask_loss": 0.5}
    config = make_config(LOSS_WEIGHTS=weights)
    model = modellib.MaskRCNN("training", config, str(tmp_path))
    path = tmp_path / "trainer.keras"
    model.keras_model.save(path)
    loaded = keras.saving.load_model(path, compile=False)
    assert isinstance(loaded, MaskRCNNTrainer)
    expected = {name: weights.get(name, 1.0) for name in LOSS_NAMES}
    assert loaded.loss_weights_ == model.keras_model.loss_weights_ == expected
    assert [w.path for w in loaded.weights] == [w.path for w in model.keras_model.weights]
    for a, b in zip(loaded.get_weights(), model.keras_model.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_the_mask_dice_weight_round_trips_with_its_loss(tmp_path):
    config = make_config(LOSS_WEIGHTS={MASK_DICE_LOSS: 0.5})
    model = modellib.MaskRCNN("training", config, str(tmp_path))
    path = tmp_path / "trainer.keras"
    model.keras_model.save(path)
    loaded = keras.saving.load_model(path, compile=False)
    assert loaded.loss_names == model.keras_model.loss_names == LOSS_NAMES + (MASK_DICE_LOSS,)
    assert loaded.loss_weights_[MASK_DICE_LOSS] == 0.5
    assert [t.name for t in loaded.loss_trackers] == list(loaded.loss_names)
