"""Backbone registry and built-in backbones.

Importing the package registers the built-in backbones: ``resnet50``,
``resnet101`` (Matterport layer names, built inline), ``resnet18`` /
``resnet34`` (basic blocks, the same names; random weights only),
``efficientnetv2-b0`` / ``-b1`` / ``-b2`` / ``-b3`` / ``-s`` / ``-m`` / ``-l``
(nested ``keras.Model`` from ``keras.applications``) and ``small-cnn`` (a
tiny plain CNN for CPU experiments and tests). Keras itself is imported
only when a backbone is built, so a Config (which reads its backbone's
strides from here) stays light. Each module declares
the pretrained files of its backbones (``register(..., pretrained=...)``),
which ``mrcnn.weights`` finds, downloads and loads by name
(``imagenet-<backbone>``).

    import backbones
    backbone = backbones.get("resnet101")       # or a callable
    c2, c3, c4, c5 = backbone.build(image_tensor, first_stride=2)
    backbone.strides(2), backbone.channels, backbone.layer_groups["4+"]
    backbone.pretrained["imagenet"]["file"]     # its declared ImageNet file

See ``backbones.registry`` for the builder contract.
"""

from backbones.registry import Backbone, available, get, register, unregister
from backbones import efficientnetv2, resnet, small_cnn  # noqa: F401

__all__ = ["Backbone", "available", "get", "register", "unregister"]
