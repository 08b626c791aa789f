"""Pretrained weight files: where to find them locally, and how to download.

Nothing here touches the network unless a download is asked for explicitly.
Local files come first: an explicit path, or a directory named by the
``MRCNN_WEIGHTS_DIR`` environment variable (e.g. a Kaggle dataset mounted
read-only under ``/kaggle/input/...``).
"""

import os
import shutil
import tempfile
import urllib.request

COCO_WEIGHTS_URL = "https://github.com/matterport/Mask_RCNN/releases/download/v2.0/mask_rcnn_coco.h5"
WEIGHTS_DIR_ENV = "MRCNN_WEIGHTS_DIR"


def download_trained_weights(coco_model_path, verbose=1, url=COCO_WEIGHTS_URL, timeout=10):
    """Download Matterport's COCO weights to ``coco_model_path`` (Matterport's API).

    The file is written atomically (to a temporary file in the same folder,
    then renamed), so an interrupted download never leaves a truncated file.

    Raises:
        OSError: when the download fails (no network, timeout); the message
            says where to put a manually downloaded copy.
    """
    target = os.path.abspath(coco_model_path)
    folder = os.path.dirname(target) or "."
    os.makedirs(folder, exist_ok=True)
    if verbose:
        print(f"Downloading pretrained model to {target} ...")
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".download-", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as resp:
            shutil.copyfileobj(resp, out)
        os.replace(tmp, target)
    except OSError as exc:
        raise OSError(
            f"could not download {url} ({exc}). Without network access, download the "
            f"file elsewhere and copy it to {target}, or put it in a folder named by "
            f"the {WEIGHTS_DIR_ENV} environment variable.") from exc
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    if verbose:
        print("... done downloading pretrained model!")
    return target
