"""Downloads written atomically: a file appears whole under its name or not at all.

    size, md5, sha256 = fetch_url(url, "folder/file.zip", timeout=10, verbose=1)

A new ``urllib`` opener per call reads the proxy settings of the environment
as they are then; ``file://`` URLs work too (how the tests stand in for the
network, which these machines do not have).
"""

import hashlib
import os
import tempfile
import urllib.request

__all__ = ["fetch_url"]


def fetch_url(url, target, timeout, verbose):
    """Download `url` to `target` atomically; returns (size, md5 hex, sha256 hex).

    The bytes go to a temporary file in `target`'s folder (created if
    missing), which replaces `target` only once complete; on any error it
    is removed and the error propagates. `verbose` prints progress in tenths
    of the announced size.
    """
    folder = os.path.dirname(os.path.abspath(target))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".download-", suffix=".part")
    md5, sha, size = hashlib.md5(usedforsecurity=False), hashlib.sha256(), 0
    # A new opener each time: it reads the proxy settings of the environment as
    # they are now (urlopen's shared opener keeps those of its first use).
    opener = urllib.request.build_opener()
    try:
        with os.fdopen(fd, "wb") as out, opener.open(url, timeout=timeout) as resp:
            total = int(resp.headers.get("Content-Length") or 0)
            next_report = 0.1
            for block in iter(lambda: resp.read(1 << 20), b""):
                out.write(block)
                md5.update(block)
                sha.update(block)
                size += len(block)
                if verbose and total and size / total >= next_report:
                    print(f"  {size / 2**20:.0f} / {total / 2**20:.0f} MiB")
                    next_report += 0.1
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return size, md5.hexdigest(), sha.hexdigest()
