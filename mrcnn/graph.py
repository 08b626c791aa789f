"""The Mask R-CNN graphs, built from plain values.

`GraphSpec` holds every value the graphs need; `spec_from_config` is the one
place that reads them from a Config. `build_training_graph` and
`build_inference_graph` wire the parts together (Matterport's layer names):

    image -> backbone (C2..C5) -> FPN (P2..P6) -> RPN -> proposals
      training:  proposals + ground truth -> detection targets -> ROIAlign
                 -> box head, mask head (positive ROIs) -> outputs for the loss;
                 FOREGROUND_LOSS: P2 -> foreground head, ground truth -> its target
      inference: proposals -> ROIAlign -> box head -> detections
                 -> ROIAlign -> mask head -> mask probabilities

Boxes inside the graph are normalized ``(y1, x1, y2, x2)``; see the layers.
"""

import dataclasses

import keras
import numpy as np

import backbones
from mrcnn.heads.box import build_box_head
from mrcnn.heads.foreground import build_foreground_head
from mrcnn.heads.fpn import build_fpn
from mrcnn.heads.names import part_of
from mrcnn.heads.registry import get_mask_head
from mrcnn.heads.rpn import apply_rpn, build_rpn_model, conv_channels
from mrcnn.keras_model import MaskRCNNModel
from mrcnn.layers.anchors import AnchorsLayer
from mrcnn.layers.batch_norm_fold import fold_batch_norms
from mrcnn.layers.batching import (DetectionBoxes, DetectionClassIds, FixedBatch, LeadingRois,
                                   PositiveRois, UnpackRois)
from mrcnn.layers.detection import DetectionLayer
from mrcnn.layers.detection_targets import DetectionTargetLayer
from mrcnn.layers.foreground_target import ForegroundTarget
from mrcnn.layers.image_meta import ActiveClassIds, NormalizedWindow, ZeroOutsideWindow
from mrcnn.layers.mask_boxes import MaskBoxes
from mrcnn.layers.proposal import ProposalLayer
from mrcnn.layers.pyramid_roi_align import PyramidROIAlign
from mrcnn.layers.row_buckets import BucketedRows
from mrcnn.training.precision import compute_dtype, resolve
from mrcnn.training.trainer import MaskRCNNTrainer

#: Names of the inference model's outputs, in order (Matterport's).
INFERENCE_OUTPUTS = ("detections", "class_probs", "bbox_deltas", "masks", "rpn_rois",
                     "rpn_class", "rpn_bbox")


@dataclasses.dataclass(frozen=True)
class GraphSpec:
    """Everything the graphs are built from (see the Config attribute of each field)."""

    image_shape: tuple              # IMAGE_SHAPE (h, w, c)
    batch_size: int                 # BATCH_SIZE
    num_classes: int                # NUM_CLASSES
    meta_size: int                  # IMAGE_META_SIZE
    backbone: object                # backbones.Backbone of BACKBONE
    first_stride: int               # BACKBONE_FIRST_STRIDE
    zero_init_residual: bool        # BACKBONE_ZERO_INIT_RESIDUAL
    strides: tuple                  # BACKBONE_STRIDES (P2..P6)
    pyramid_size: int               # TOP_DOWN_PYRAMID_SIZE
    anchor_scales: tuple            # RPN_ANCHOR_SCALES
    anchor_ratios: tuple            # RPN_ANCHOR_RATIOS
    anchor_stride: int              # RPN_ANCHOR_STRIDE
    anchors_per_location: int       # RPN_ANCHORS_PER_LOCATION
    rpn_conv_channels: int          # RPN_CONV_CHANNELS
    rpn_nms_threshold: float        # RPN_NMS_THRESHOLD
    pre_nms_limit: int              # PRE_NMS_LIMIT
    post_nms_rois_training: int     # POST_NMS_ROIS_TRAINING
    post_nms_rois_inference: int    # POST_NMS_ROIS_INFERENCE
    rpn_bbox_std_dev: tuple         # RPN_BBOX_STD_DEV
    rpn_train_anchors_per_image: int  # RPN_TRAIN_ANCHORS_PER_IMAGE
    bbox_std_dev: tuple             # BBOX_STD_DEV
    pool_size: int                  # POOL_SIZE
    mask_pool_size: int             # MASK_POOL_SIZE
    mask_size: int                  # MASK_SHAPE[0]
    mask_head: object               # MASK_HEAD (name or callable)
    mask_head_channels: int         # MASK_HEAD_CHANNELS
    mask_box_scale: float           # MASK_BOX_SCALE
    fc_layers_size: int             # FPN_CLASSIF_FC_LAYERS_SIZE
    train_rois_per_image: int       # TRAIN_ROIS_PER_IMAGE
    roi_positive_ratio: float       # ROI_POSITIVE_RATIO
    max_gt_instances: int           # MAX_GT_INSTANCES
    gt_mask_shape: tuple            # MINI_MASK_SHAPE, or IMAGE_SHAPE[:2] without mini masks
    use_mini_mask: bool             # USE_MINI_MASK
    detection_max_instances: int    # DETECTION_MAX_INSTANCES
    detection_min_confidence: float  # DETECTION_MIN_CONFIDENCE
    detection_nms_threshold: float  # DETECTION_NMS_THRESHOLD
    mixed_precision: object         # MIXED_PRECISION resolved: None, bfloat16 or float16
    loss_weights: dict              # LOSS_WEIGHTS
    foreground_stride: object = None  # FOREGROUND_STRIDE if FOREGROUND_LOSS, else None
    fold_batch_norms: bool = True   # FOLD_BATCH_NORMS

    @property
    def positive_rois(self):
        """ROIs the mask head trains on: at most this many positives come first."""
        return max(1, int(self.train_rois_per_image * self.roi_positive_ratio))


def spec_from_config(config):
    """The `GraphSpec` of a Config (the only place the graph reads a Config).

    The config is validated again first: settings assigned after it was
    constructed (``config.RPN_ANCHOR_SCALES = ...`` in a notebook) are checked
    and the values derived from them (RPN_ANCHORS_PER_LOCATION) brought up to date.
    """
    config.validate()
    h, w, c = (int(v) for v in config.IMAGE_SHAPE)
    floats = lambda v: tuple(float(x) for x in np.ravel(v))  # noqa: E731
    return GraphSpec(
        image_shape=(h, w, c), batch_size=int(config.BATCH_SIZE),
        num_classes=int(config.NUM_CLASSES), meta_size=int(config.IMAGE_META_SIZE),
        backbone=backbones.get(config.BACKBONE),
        first_stride=int(config.BACKBONE_FIRST_STRIDE),
        zero_init_residual=bool(getattr(config, "BACKBONE_ZERO_INIT_RESIDUAL", False)),
        strides=tuple(int(s) for s in config.BACKBONE_STRIDES),
        pyramid_size=int(config.TOP_DOWN_PYRAMID_SIZE),
        anchor_scales=tuple(config.RPN_ANCHOR_SCALES),
        anchor_ratios=floats(config.RPN_ANCHOR_RATIOS),
        anchor_stride=int(config.RPN_ANCHOR_STRIDE),
        anchors_per_location=int(config.RPN_ANCHORS_PER_LOCATION),
        rpn_conv_channels=conv_channels(config.RPN_CONV_CHANNELS),
        rpn_nms_threshold=float(config.RPN_NMS_THRESHOLD),
        pre_nms_limit=int(config.PRE_NMS_LIMIT),
        post_nms_rois_training=int(config.POST_NMS_ROIS_TRAINING),
        post_nms_rois_inference=int(config.POST_NMS_ROIS_INFERENCE),
        rpn_bbox_std_dev=floats(config.RPN_BBOX_STD_DEV),
        rpn_train_anchors_per_image=int(config.RPN_TRAIN_ANCHORS_PER_IMAGE),
        bbox_std_dev=floats(config.BBOX_STD_DEV),
        pool_size=int(config.POOL_SIZE), mask_pool_size=int(config.MASK_POOL_SIZE),
        mask_size=int(config.MASK_SHAPE[0]), mask_head=config.MASK_HEAD,
        mask_head_channels=int(config.MASK_HEAD_CHANNELS),
        mask_box_scale=float(getattr(config, "MASK_BOX_SCALE", 1.0)),
        fc_layers_size=int(config.FPN_CLASSIF_FC_LAYERS_SIZE),
        train_rois_per_image=int(config.TRAIN_ROIS_PER_IMAGE),
        roi_positive_ratio=float(config.ROI_POSITIVE_RATIO),
        max_gt_instances=int(config.MAX_GT_INSTANCES),
        gt_mask_shape=(tuple(int(v) for v in config.MINI_MASK_SHAPE) if config.USE_MINI_MASK
                       else (h, w)),
        use_mini_mask=bool(config.USE_MINI_MASK),
        detection_max_instances=int(config.DETECTION_MAX_INSTANCES),
        detection_min_confidence=float(config.DETECTION_MIN_CONFIDENCE),
        detection_nms_threshold=float(config.DETECTION_NMS_THRESHOLD),
        mixed_precision=resolve(config.MIXED_PRECISION, config.BACKBONE),
        loss_weights=dict(config.LOSS_WEIGHTS),
        foreground_stride=int(config.FOREGROUND_STRIDE) if config.FOREGROUND_LOSS else None,
        fold_batch_norms=bool(config.FOLD_BATCH_NORMS),
    )


def _trunk(spec, mode):
    """Inputs, image meta, pyramid features, anchors and RPN proposals (both modes)."""
    h, w, c = spec.image_shape
    b = spec.batch_size
    input_image = keras.Input((h, w, c), batch_size=b, name="input_image")
    input_image_meta = keras.Input((spec.meta_size,), batch_size=b, name="input_image_meta")
    image = FixedBatch(b, name="input_image_fixed")(input_image)
    image_meta = FixedBatch(b, name="input_image_meta_fixed")(input_image_meta)
    image = ZeroOutsideWindow(name="input_image_window")([image, image_meta])
    # convolutions in 16 bits under mixed precision; geometry stays float32
    with compute_dtype(spec.mixed_precision):
        options = {"zero_init_residual": True} if spec.zero_init_residual else {}
        feats = spec.backbone.build(image, first_stride=spec.first_stride, **options)
        pyramid = build_fpn(*feats, pyramid_size=spec.pyramid_size)
    anchors_layer = AnchorsLayer(spec.anchor_scales, spec.anchor_ratios, spec.strides,
                                 spec.anchor_stride, (h, w), name="anchors")
    anchors = anchors_layer(image)
    with compute_dtype(spec.mixed_precision):
        rpn = build_rpn_model(spec.anchors_per_location, spec.pyramid_size,
                              spec.anchor_stride, channels=spec.rpn_conv_channels)
    rpn_class_logits, rpn_class, rpn_bbox = apply_rpn(rpn, pyramid, anchors_layer.num_anchors)
    count = spec.post_nms_rois_training if mode == "training" else spec.post_nms_rois_inference
    rpn_rois = ProposalLayer(count, spec.rpn_nms_threshold, spec.pre_nms_limit,
                             spec.rpn_bbox_std_dev, name="ROI")([rpn_class, rpn_bbox, anchors])
    return {"input_image": input_image, "input_image_meta": input_image_meta,
            "image_meta": image_meta, "head_maps": pyramid[:4], "num_anchors":
            anchors_layer.num_anchors, "rpn_class_logits": rpn_class_logits,
            "rpn_class": rpn_class, "rpn_bbox": rpn_bbox, "rpn_rois": rpn_rois}


def _mask_head(spec, pooled, num_rois):
    builder = get_mask_head(spec.mask_head)
    with compute_dtype(spec.mixed_precision):
        return builder(pooled, num_rois=num_rois, num_classes=spec.num_classes,
                       mask_size=spec.mask_size, channels=spec.mask_head_channels)


def _bucketed_mask_head(spec, pooled, class_ids, name):
    """JAX: the mask head on the leading rows at a bucketed size (mrcnn.layers.row_buckets)."""
    rows = keras.Input(batch_shape=(pooled.shape[0], None) + tuple(pooled.shape[2:]),
                       dtype=pooled.dtype, name=name + "_rows")
    head = keras.Model(rows, _mask_head(spec, rows, None), name="mrcnn_mask_head")
    return BucketedRows(head, pooled.shape[1], name=name)(pooled, class_ids)


def _bucketed_rois(spec):
    """Whether the mask head runs at bucketed sizes: on JAX, if the head allows a varying count."""
    return keras.backend.backend() == "jax" and \
        getattr(get_mask_head(spec.mask_head), "varying_rois", False)


def _varying_rois(spec):
    """Whether the mask head runs on a varying ROI count: not on JAX, and if the head allows it."""
    return keras.backend.backend() != "jax" and \
        getattr(get_mask_head(spec.mask_head), "varying_rois", False)


def build_training_graph(spec):
    """The training model: inputs and targets in, head outputs and detection targets out.

    Returns:
        a `MaskRCNNTrainer` (its ``compute_loss`` gives the five losses, six
        with FOREGROUND_LOSS) with
        dict inputs ``input_image``, ``input_image_meta``, ``input_rpn_match``,
        ``input_rpn_bbox``, ``input_gt_class_ids``, ``input_gt_boxes``,
        ``input_gt_masks`` (see `mrcnn.data.generator.DataGenerator`).
    """
    t = _trunk(spec, "training")
    b, g = spec.batch_size, spec.max_gt_instances
    h, w, _ = spec.image_shape
    inputs = {
        "input_image": t["input_image"],
        "input_image_meta": t["input_image_meta"],
        "input_rpn_match": keras.Input((t["num_anchors"],), batch_size=b, dtype="int32",
                                       name="input_rpn_match"),
        "input_rpn_bbox": keras.Input((spec.rpn_train_anchors_per_image, 4), batch_size=b,
                                      name="input_rpn_bbox"),
        "input_gt_class_ids": keras.Input((g,), batch_size=b, dtype="int32",
                                          name="input_gt_class_ids"),
        "input_gt_boxes": keras.Input((g, 4), batch_size=b, name="input_gt_boxes"),
        "input_gt_masks": keras.Input(spec.gt_mask_shape + (g,), batch_size=b, dtype="bool",
                                      name="input_gt_masks"),
    }
    active_class_ids = ActiveClassIds(name="active_class_ids")(t["image_meta"])
    gt = [FixedBatch(b, name=k + "_fixed")(inputs[k])
          for k in ("input_gt_class_ids", "input_gt_boxes", "input_gt_masks")]
    rois, target_class_ids, target_bbox, target_mask = DetectionTargetLayer(
        spec.train_rois_per_image, spec.roi_positive_ratio, spec.bbox_std_dev,
        (spec.mask_size, spec.mask_size), use_mini_mask=spec.use_mini_mask,
        image_shape=(h, w), mask_box_scale=spec.mask_box_scale,
        name="proposal_targets")([t["rpn_rois"]] + gt)
    pooled = PyramidROIAlign((spec.pool_size,) * 2, (h, w),
                             name="roi_align_classifier")([rois] + t["head_maps"])
    with compute_dtype(spec.mixed_precision):
        class_logits, _, bbox = build_box_head(pooled, spec.train_rois_per_image,
                                               spec.num_classes, spec.fc_layers_size)
    # The mask loss uses positive ROIs only; they come first. Where sizes may vary
    # (not JAX) and the head allows it, the mask head runs on the batch's positives only.
    p = spec.positive_rois
    mask_rois = LeadingRois(p, name="mask_rois")(rois)
    if spec.mask_box_scale != 1.0:      # the boxes the mask targets were cut from
        mask_rois = MaskBoxes(spec.mask_box_scale, name="mask_boxes")(mask_rois)
    mask_class_ids = LeadingRois(p, name="mask_class_ids")(target_class_ids)
    target_mask = LeadingRois(p, name="mask_targets")(target_mask)
    pooled_mask = PyramidROIAlign((spec.mask_pool_size,) * 2, (h, w),
                                  name="roi_align_mask")([mask_rois] + t["head_maps"])
    varying = _varying_rois(spec)
    if varying:
        pooled_mask = PositiveRois(name="mask_positive_features")(pooled_mask, mask_class_ids)
        target_mask = PositiveRois(name="mask_positive_targets")(target_mask, mask_class_ids)
        mask_class_ids = PositiveRois(name="mask_positive_class_ids")(mask_class_ids,
                                                                      mask_class_ids)
    if _bucketed_rois(spec):
        mask_logits = _bucketed_mask_head(spec, pooled_mask, mask_class_ids, "mrcnn_mask_buckets")
    else:
        mask_logits = _mask_head(spec, pooled_mask, None if varying else p)
    outputs = {**_foreground(spec, t, gt),
        "rpn_class_logits": t["rpn_class_logits"], "rpn_bbox": t["rpn_bbox"],
        "mrcnn_class_logits": class_logits, "mrcnn_bbox": bbox,
        "mrcnn_mask_logits": mask_logits, "rois": rois,
        "target_class_ids": target_class_ids, "target_bbox": target_bbox,
        "target_mask": target_mask, "mask_class_ids": mask_class_ids,
        "active_class_ids": active_class_ids, "rpn_rois": t["rpn_rois"],
    }
    return MaskRCNNTrainer(inputs=inputs, outputs=outputs, loss_weights=spec.loss_weights,
                           name="mask_rcnn")


def _foreground(spec, t, gt):
    """FOREGROUND_LOSS: the foreground target and the head's logits on P2 (else nothing)."""
    if spec.foreground_stride is None:
        return {}
    h, w, _ = spec.image_shape
    target = ForegroundTarget((h, w), spec.foreground_stride, spec.use_mini_mask,
                              name="foreground_target")(gt)
    with compute_dtype(spec.mixed_precision):
        logits = build_foreground_head(t["head_maps"][0],
                                       spec.strides[0] // spec.foreground_stride)
    return {"foreground_target": target, "foreground_logits": logits}


def build_inference_graph(spec):
    """The inference model: [molded images, image metas] -> the outputs of `INFERENCE_OUTPUTS`.

    ``detections`` is ``[B, DETECTION_MAX_INSTANCES, (y1, x1, y2, x2, class_id,
    score)]`` normalized and zero padded; ``masks`` ``[B, DETECTION_MAX_INSTANCES,
    mask_size, mask_size, NUM_CLASSES]`` probabilities.
    """
    t = _trunk(spec, "inference")
    h, w, _ = spec.image_shape
    rpn_rois = t["rpn_rois"]
    pooled = PyramidROIAlign((spec.pool_size,) * 2, (h, w),
                             name="roi_align_classifier")([rpn_rois] + t["head_maps"])
    with compute_dtype(spec.mixed_precision):
        _, class_probs, bbox = build_box_head(pooled, spec.post_nms_rois_inference,
                                              spec.num_classes, spec.fc_layers_size)
    window = NormalizedWindow((h, w), name="norm_window")(t["image_meta"])
    detections = DetectionLayer(spec.detection_max_instances, spec.detection_min_confidence,
                                spec.detection_nms_threshold, spec.bbox_std_dev,
                                name="mrcnn_detection")([rpn_rois, class_probs, bbox, window])
    det_boxes = DetectionBoxes(name="detection_boxes")(detections)
    if spec.mask_box_scale != 1.0:      # masks are pasted into these grown boxes
        det_boxes = MaskBoxes(spec.mask_box_scale, name="mask_boxes")(det_boxes)
    pooled_mask = PyramidROIAlign((spec.mask_pool_size,) * 2, (h, w),
                                  name="roi_align_mask")([det_boxes] + t["head_maps"])
    if _varying_rois(spec):     # the mask head on the detections only, not the padding
        det_class_ids = DetectionClassIds(name="detection_class_ids")(detections)
        packed = PositiveRois(name="mask_detected_features")(pooled_mask, det_class_ids)
        mask_logits = UnpackRois(name="mask_detected_logits")(
            _mask_head(spec, packed, None), det_class_ids)
    elif _bucketed_rois(spec):  # JAX: the mask head on a bucket holding the detections
        det_class_ids = DetectionClassIds(name="detection_class_ids")(detections)
        mask_logits = _bucketed_mask_head(spec, pooled_mask, det_class_ids, "mrcnn_mask_buckets")
    else:
        mask_logits = _mask_head(spec, pooled_mask, spec.detection_max_instances)
    masks = keras.layers.Activation("sigmoid", name="mrcnn_mask_probs")(mask_logits)
    return MaskRCNNModel(
        inputs=[t["input_image"], t["input_image_meta"]],
        outputs=[detections, class_probs, bbox, masks, rpn_rois, t["rpn_class"], t["rpn_bbox"]],
        name="mask_rcnn")


def build(mode, spec):
    """`build_training_graph` or `build_inference_graph` for mode "training" / "inference".

    With ``spec.fold_batch_norms`` each batch norm runs folded into its convolution
    wherever it uses its moving statistics (`mrcnn.layers.batch_norm_fold`, TensorFlow).
    """
    builders = {"training": build_training_graph, "inference": build_inference_graph}
    if mode not in builders:
        raise ValueError(f"mode must be 'training' or 'inference', got {mode!r}")
    model = builders[mode](spec)
    if spec.fold_batch_norms:
        fold_batch_norms(model)
    return model


def parameter_counts(keras_model):
    """Parameters per part (`mrcnn.heads.names.part_of`): backbone, fpn, rpn, heads, total."""
    counts = {"backbone": 0, "fpn": 0, "rpn": 0, "heads": 0}
    for layer in keras_model.layers:
        counts[part_of(layer.name)] += sum(int(np.prod(v.shape)) for v in layer.weights)
    counts["total"] = sum(counts.values())
    return counts


def print_parameter_counts(keras_model, print_fn=print):
    """Print `parameter_counts` as a two-column table; return them."""
    counts = parameter_counts(keras_model)
    print_fn(f"{'part':10} {'parameters':>14}")
    for k, v in counts.items():
        print_fn(f"{k:10} {v:14,d}")
    return counts
