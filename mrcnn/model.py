"""MaskRCNN: Matterport's model API, wiring the parts of the library together.

    import mrcnn.model as modellib
    model = modellib.MaskRCNN(mode="training", config=config, model_dir="logs")
    model.load_weights("coco", exclude="heads")
    model.train(dataset_train, dataset_val, learning_rate=config.LEARNING_RATE,
                epochs=10, layers="heads")
    results = modellib.MaskRCNN("inference", config, "logs").detect([image])

The graphs are built by `mrcnn.graph`, training runs through
`mrcnn.training`, weight files through `mrcnn.weights`, images in and
detections out through `mrcnn.inference.molding`. Matterport's module-level
helpers are here too: `load_image_gt`, `data_generator`, `log`, `mold_image`,
`unmold_image`, `compose_image_meta`, `parse_image_meta`.
"""

import numpy as np

from mrcnn import distribute, graph, probe, weights
from mrcnn.data.anchors import model_anchors
from mrcnn.data.boxes import norm_boxes
from mrcnn.data.image import mold_image, unmold_image  # noqa: F401  (Matterport's names)
from mrcnn.data.image_meta import compose_image_meta, parse_image_meta  # noqa: F401
from mrcnn.data.sample import load_image_gt  # noqa: F401
from mrcnn.evaluation import epoch_score
from mrcnn.inference import molding
from mrcnn.inference.export import export_model
from mrcnn.probe import data_generator, log  # noqa: F401
from mrcnn.training import loop, runs, trainable
from mrcnn.training.optimizer import build_optimizer
from mrcnn.weights import adapt, transfer

__all__ = ["MaskRCNN", "load_image_gt", "data_generator", "log", "mold_image", "unmold_image",
           "compose_image_meta", "parse_image_meta"]


class MaskRCNN:
    """Mask R-CNN: a Keras model plus Matterport's training and inference API.

    Args:
        mode: "training" or "inference".
        config: a Config (subclass) instance.
        model_dir: folder for checkpoints and logs; each training run writes
            to ``model_dir/<config.NAME.lower()><YYYYmmddTHHMMSS>/``.

    Attributes:
        keras_model: the Keras model (`mrcnn.graph`).
        epoch: epochs trained so far (restored from a checkpoint's name).
        plan: where the model runs (`mrcnn.distribute.TrainingPlan`; Config.DISTRIBUTION).
        log_dir, checkpoint_path: where the current run writes.
        resume_state: what the next ``train()`` continues from: a checkpoint
            (its saved optimizer state), the previous optimizer, or None.
    """

    def __init__(self, mode, config, model_dir):
        if mode not in ("training", "inference"):
            raise ValueError(f"mode must be 'training' or 'inference', got {mode!r}")
        if not hasattr(config, "BATCH_SIZE"):
            raise TypeError(f"config must be an instance of a Config subclass (did you pass "
                            f"the class instead of an instance?), got {config!r}")
        self.mode, self.config, self.model_dir = mode, config, str(model_dir)
        self.plan = distribute.model_plan(mode, config)
        self.spec = self.plan.graph_spec(graph.spec_from_config(config))
        self.backbone = self.spec.backbone
        self.rpn_width_auto = config.RPN_CONV_CHANNELS == "auto"    # see load_weights
        self.set_log_dir()
        self.keras_model = self.build(mode, config)

    def build(self, mode, config):
        """Build the `mode` model under ``self.plan`` (mrcnn.distribute; inference: one device)."""
        with self.plan.scope():
            spec = self.plan.graph_spec(graph.spec_from_config(config))
            return self.plan.prepare(graph.build(mode, spec), config.TRAIN_BN)

    # ------------------------------------------------------------ run folders
    def set_log_dir(self, model_path=None):
        """Start a new run folder, or continue the run of checkpoint `model_path` after its epoch.

        ``resume_state`` becomes what the next ``train()`` continues from: that
        checkpoint (its saved optimizer and random state), or nothing.
        """
        self.epoch, self.log_dir, self.checkpoint_path = runs.run_paths(
            self.model_dir, self.config.NAME, model_path)
        self.resume_state = model_path if self.epoch else None

    def find_last(self):
        """Path of the last checkpoint of the newest run of this config's NAME (`runs.find_last`)."""
        return runs.find_last(self.model_dir, self.config.NAME)

    # ---------------------------------------------------------------- weights
    def load_weights(self, filepath, by_name=False, exclude=None, allow_download=False,
                     verify=True, init=False):
        """Load weights: "coco", "imagenet", "last", "best" or a path; see `mrcnn.weights.load_weights`.

        A checkpoint named like ``mask_rcnn_<name>_<epoch>.h5`` sets ``self.epoch``
        (and the run folder) so that training resumes after it, with the
        optimizer state saved beside it (Matterport's behaviour, made exact).
        ``init=True`` (or `init_from`) only initialises from the file: a new
        run folder, epoch 0, the whole schedule ahead. With RPN_CONV_CHANNELS
        "auto" a file of another RPN width (Matterport's 512) rebuilds the
        model at its width first (`mrcnn.weights.adapt`). "last" takes the
        newest checkpoint that is intact: a damaged newer one (truncated,
        checksum mismatch, NaN weights) is skipped with a RuntimeWarning.
        "best" is the best checkpoint of the newest run that ranked them
        (`runs.find_best`). `verify` checks a named file ("coco",
        "imagenet") found locally against the manifest; pass False to load
        a file you trust anyway.

        Returns:
            report dict: ``loaded``, ``excluded``, ``missing``, ``shape_mismatch``, ``path``.
        """
        if isinstance(filepath, str) and filepath.lower() == "best":
            filepath = runs.find_best(self.model_dir, self.config.NAME)
        report = adapt.load_adapting_rpn_width(self, lambda log_report: weights.load_weights(
            self.keras_model, filepath, backbone=self.backbone, find_last=self.find_last,
            checkpoints=lambda: runs.list_checkpoints(self.model_dir, self.config.NAME),
            by_name=by_name, exclude=exclude, allow_download=allow_download, verify=verify,
            log_report=log_report))
        self.set_log_dir(None if init else report["path"])
        return report

    def rebuild(self):
        """Build the Keras model again from ``self.config``, keeping the weights of unchanged layers."""
        previous, self.spec = self.keras_model, self.plan.graph_spec(
            graph.spec_from_config(self.config))
        self.keras_model = self.build(self.mode, self.config)
        transfer.copy_weights_by_name(previous, self.keras_model)

    def init_from(self, filepath, by_name=True, exclude=None, allow_download=False,
                  verify=True):
        """Initialise from weights ("coco", "imagenet", "last", "best", a path) and start a new run.

        Unlike `load_weights`, a checkpoint's name is not adopted: training
        writes to a new run folder from epoch 0 with a fresh optimizer and
        the whole learning-rate schedule (pretrain -> fine-tune). Layers of
        another shape (class-specific heads) are skipped and reported.
        """
        return self.load_weights(filepath, by_name=by_name, exclude=exclude,
                                 allow_download=allow_download, verify=verify, init=True)

    def resume(self, checkpoint="last"):
        """Continue a run from `checkpoint` ("last", "best" or a path) exactly; see `mrcnn.training.loop`.

        Its run folder, epoch, optimizer and random state; the next
        ``train()`` moves the run's later checkpoints aside
        (`runs.set_aside_after`). Raises ValueError for a file that is not a
        run checkpoint (use `init_from`).
        """
        if str(checkpoint).lower() not in ("last", "best"):
            runs.require_checkpoint_name(checkpoint)        # before anything is loaded
        return self.load_weights(checkpoint)

    def save_weights(self, filepath):
        """Save the weights by layer name (atomic; loadable by either mode)."""
        return weights.save_weights(self.keras_model, filepath)

    def get_imagenet_weights(self, allow_download=False):
        """Path of the backbone's ImageNet weight file (Matterport's API)."""
        return weights.pretrained_path(self.backbone, "imagenet", allow_download=allow_download)

    # --------------------------------------------------------------- training
    def layer_regex(self, layers):
        """The trainable-layer regex for a `layers` mode ("heads", "3+", ...) or a user regex."""
        return trainable.layer_regex(layers, self.backbone)

    def set_trainable(self, layer_regex, keras_model=None, indent=0, verbose=0):
        """Train the layers `layer_regex` (a mode or a regex) selects, freeze the rest; return their names.

        BatchNormalization layers stay frozen unless Config.TRAIN_BN.
        """
        names = trainable.set_trainable(keras_model or self.keras_model,
                                        self.layer_regex(layer_regex), self.config.TRAIN_BN)
        for name in names if verbose else ():
            log(" " * indent + name)
        return names

    def get_trainable_layers(self):
        """The leaf layers that hold weights and are trainable."""
        return trainable.trainable_layers(self.keras_model)

    def find_trainable_layer(self, layer):
        """The layer holding `layer`'s weights (Matterport's: unwraps wrappers)."""
        return probe.find_trainable_layer(layer)

    def compile(self, learning_rate, momentum, total_steps=None):
        """Compile the training model with the optimizer of `mrcnn.training.optimizer`."""
        steps = total_steps or self.config.STEPS_PER_EPOCH
        with self.plan.scope():                   # the optimizer's variables beside the model's
            optimizer = self.plan.prepare_optimizer(
                build_optimizer(self.config, learning_rate, momentum, steps))
            self.keras_model.compile(optimizer=optimizer, jit_compile="auto")
        return optimizer

    def train(self, train_dataset, val_dataset, learning_rate, epochs, layers,
              augmentation=None, custom_callbacks=None, no_augmentation_sources=None,
              workers=None, use_multiprocessing=None, verbose=1, seed=0, sampler=None,
              evaluation=None, keep="all", monitor=None, patience=None):
        """Train until epoch `epochs` (Matterport's API) with ``keras.Model.fit``; returns its History.

        Args:
            train_dataset, val_dataset: prepared Datasets (val may be None).
            learning_rate: peak learning rate.
            epochs: train until this epoch; epochs already done count, so a
                second call with a larger number continues (as in Matterport).
            layers: "heads", "3+", "4+", "5+", "all" or a regex over layer names.
            augmentation: `mrcnn.data.augment` augmenters, an imgaug augmenter,
                an albumentations pipeline or ``(image, masks, rng) -> (image,
                masks)``; applied after the sample cache, so every epoch is random.
            custom_callbacks, no_augmentation_sources, workers, use_multiprocessing,
                seed, sampler: extra Keras callbacks; dataset sources not to
                augment; data-loader workers (default Config.WORKERS); the seed of
                the data order and augmentation; balanced sampling ("size", an
                ``image_info`` key or ``image_id -> group``).
            evaluation: score the validation set after every epoch: True (on
                `val_dataset`) or an `mrcnn.evaluation.epoch_score.EpochScore`; adds
                ``val_map_iou``, ``val_mask_ap``, ... to History, history.csv, TensorBoard.
            keep, monitor, patience: checkpoints kept ("all" as Matterport, "best" by
                `monitor` plus the newest, "last"); the epoch-log entry that ranks them
                (default ``val_map_iou`` with `evaluation`, else ``val_loss``); stop
                when `monitor` has not improved for `patience` epochs.
        """
        if self.mode != "training":
            raise ValueError("train() needs a model built with mode='training'")
        metrics = epoch_score.attach(evaluation, val_dataset, self.config, lambda config: MaskRCNN(
            "inference", config, self.model_dir))
        return loop.train(self, train_dataset, val_dataset, learning_rate, epochs, layers,
                          augmentation=augmentation, custom_callbacks=custom_callbacks,
                          no_augmentation_sources=no_augmentation_sources, workers=workers,
                          use_multiprocessing=use_multiprocessing, verbose=verbose, seed=seed,
                          sampler=sampler, epoch_metrics=metrics, keep=keep, monitor=monitor,
                          patience=patience)

    # -------------------------------------------------------------- inference
    def mold_inputs(self, images):
        """Images -> (molded float32 [N, H, W, C], image metas, windows); see `mrcnn.inference.molding`."""
        return molding.mold_inputs(images, self.config)

    def unmold_detections(self, detections, mrcnn_mask, original_image_shape, image_shape,
                          window):
        """One image's padded detections -> boxes, class ids, scores, full-size bool masks."""
        return molding.unmold_detections(detections, mrcnn_mask, original_image_shape,
                                         image_shape, window,
                                         self.config.DETECTION_MASK_THRESHOLD,
                                         self.config.DETECTION_MASK_PASTE,
                                         getattr(self.config, "MASK_BOX_SCALE", 1.0))

    def detect(self, images, verbose=0, soft_masks=False, sparse=False):
        """Detect instances in images (run in batches of Config.BATCH_SIZE).

        Images are resized by IMAGE_SCALE and fitted to the input as
        IMAGE_RESIZE_MODE says; one that is larger than IMAGE_SHAPE after that
        ("none", "pad64") raises: run it in tiles with `TiledModel(model)`; a
        smaller one is padded ("none"): `mrcnn.inference.detect_fitted` fits it.

        Args:
            images: list of [H, W, C] images.
            soft_masks: also return ``soft_masks`` float32 [H, W, N], the mask
                head's probabilities pasted with the geometry of the binary
                masks (``masks == soft_masks >= DETECTION_MASK_THRESHOLD``), for
                `mrcnn.inference.postprocess`'s mask threshold and TTA merging.
            sparse: masks (and soft masks) as `mrcnn.data.masks.SparseMasks`
                (memory of the foreground only; for large images, many cells).

        Returns:
            one dict per image: ``rois`` int32 [N, (y1, x1, y2, x2)] in original
            pixels, ``class_ids`` int32 [N], ``scores`` float32 [N], ``masks``
            bool [H, W, N] at the original resolution (and ``soft_masks``).
        """
        if self.mode != "inference":
            raise ValueError("detect() needs a model built with mode='inference'")
        images, results, b = list(images), [], self.config.BATCH_SIZE
        for start in range(0, len(images), b):
            chunk = images[start:start + b]
            molded, metas, windows = self.mold_inputs(chunk)
            results += self.detect_molded(molded, metas, [np.shape(i) for i in chunk], windows,
                                          verbose=verbose, soft_masks=soft_masks, sparse=sparse)
        return results

    def detect_molded(self, molded_images, image_metas, original_shapes=None, windows=None,
                      verbose=0, soft_masks=False, sparse=False):
        """Detect on images already molded to the model input (Matterport's API).

        ``original_shapes`` default to the molded shape (results in molded
        pixels) and ``windows`` to those in the metas; `soft_masks`, `sparse`
        as in `detect`.
        """
        return molding.detect_molded(self.keras_model, self.config, molded_images, image_metas,
                                     original_shapes, windows, soft_masks, sparse,
                                     log=log if verbose else None)

    def get_anchors(self, image_shape=None):
        """Normalized anchors [A, (y1, x1, y2, x2)] of the model input (Matterport's API)."""
        shape = self.spec.image_shape if image_shape is None else tuple(image_shape)
        if tuple(int(v) for v in shape[:2]) != self.spec.image_shape[:2]:
            raise ValueError(f"the model's anchors are for its input {self.spec.image_shape[:2]}, "
                             f"got image_shape {shape}")
        return norm_boxes(model_anchors(self.config), shape[:2])

    def export(self, path, format="tf_saved_model", class_names=None, overwrite=False):
        """Write the inference model as a SavedModel, ONNX or .keras file (`mrcnn.inference.export`)."""
        return export_model(self, path, format=format, class_names=class_names,
                            overwrite=overwrite)

    # ---------------------------------------------------------------- inspect
    def ancestor(self, tensor, name, checked=None):
        """The nearest ancestor of `tensor` made by a layer matching `name` (see `mrcnn.probe`)."""
        return probe.ancestor(tensor, name)

    def run_graph(self, images, outputs, image_metas=None):
        """Compute ``[(name, tensor), ...]`` of the inference graph on images (Matterport's API).

        With `image_metas`, `images` are taken as already molded.
        """
        if self.mode != "inference":
            raise ValueError("run_graph() needs a model built with mode='inference'; in "
                             "training mode call mrcnn.probe.run_graph(model.keras_model, "
                             "batch, outputs) with a DataGenerator batch")
        if image_metas is None:
            images, image_metas, _ = self.mold_inputs(images)
        inputs = molding.pad_batch(images, image_metas, self.config.BATCH_SIZE)
        return probe.run_graph(self.keras_model, list(inputs), outputs)

    def parameter_counts(self):
        """Parameters per part: backbone, fpn, rpn, heads, total."""
        return graph.parameter_counts(self.keras_model)

    def show_summary(self, print_fn=print):
        """Print the Keras summary and the parameter count of each part."""
        self.keras_model.summary(print_fn=print_fn)
        return graph.print_parameter_counts(self.keras_model, print_fn)

    def plot_lr_schedule(self, epochs, **kwargs):
        """Plot the learning rate over `epochs` epochs (see `mrcnn.visualize.plot_lr_schedule`)."""
        from mrcnn import visualize

        return visualize.plot_lr_schedule(self.config, epochs, **kwargs)
