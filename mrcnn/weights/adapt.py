"""Fitting the model to a weight file: the RPN's width under RPN_CONV_CHANNELS = "auto".

A model built with "auto" has a 256-channel shared RPN conv (torchvision's
width, half the cost of Matterport's 512). Matterport's COCO weights, and
any checkpoint of a 512-channel run, hold the wider conv; loading one
rebuilds the model at the file's width (keeping the weights of every other
layer) and loads again, so Matterport's recipe
``model.load_weights(COCO_MODEL_PATH, by_name=True, exclude=[...])`` loads
the RPN too. A width set as an int is never changed: the file's RPN is then
reported as a shape mismatch (``by_name=True``) or refused.
"""

from mrcnn.heads.rpn import file_conv_channels
from mrcnn.weights.integrity import WeightsMismatchError
from mrcnn.weights.loading import log_load_report


def load_adapting_rpn_width(model, load):
    """``load()`` into `model`, rebuilt at the file's RPN width first where that differs.

    Args:
        model: a `mrcnn.model.MaskRCNN` (``config``, ``rpn_width_auto``,
            ``rebuild()``).
        load: ``(log_report) -> report`` loading the file into
            ``model.keras_model`` (as `mrcnn.weights.load_weights`); called a
            second time after a rebuild. The first load's report is logged
            only when no rebuild follows (the RPN it skipped loads then).

    Returns:
        the load's report (of the second load after a rebuild, with
        ``rpn_rebuilt``: the width adopted).
    """
    try:
        report = load(log_report=False)
    except WeightsMismatchError as exc:     # by_name=False: nothing was assigned
        width = _file_width(model, exc.report)
        if width is None:
            raise
        return _load_rebuilt(model, load, width)
    width = _file_width(model, report)
    if width is None:
        log_load_report(report)
        return report
    return _load_rebuilt(model, load, width)


def _file_width(model, report):
    """The file's RPN width where the model should adopt it, else None."""
    width = file_conv_channels(report.get("shape_mismatch", ()))
    return width if model.rpn_width_auto else None


def _load_rebuilt(model, load, width):
    """Rebuild `model` at RPN `width` and load; a load that fails leaves the model as it was."""
    before = model.keras_model, model.spec, model.config.RPN_CONV_CHANNELS
    try:
        model.config.RPN_CONV_CHANNELS = width    # what the run's config.json records
        model.rebuild()
        return dict(load(log_report=True), rpn_rebuilt=width)
    except Exception:
        model.keras_model, model.spec, model.config.RPN_CONV_CHANNELS = before
        raise
