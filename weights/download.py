"""Download and check the pretrained weight files listed in mrcnn's manifest.

Usage (where a network exists; the package must be installed, e.g. ``pip install -e .``)::

    python weights/download.py --list                  # known files and local copies
    python weights/download.py coco                    # Matterport's mask_rcnn_coco.h5
    python weights/download.py imagenet-efficientnetv2-b0 --dir /data/weights
    python weights/download.py imagenet                # every backbone's ImageNet file
    python weights/download.py all --verify            # check local copies, download nothing

Files go to ``--dir``, else the first writable folder of ``$MRCNN_WEIGHTS_DIR``,
else the Keras cache (``~/.keras/models``); they are written atomically and
checked against the manifest (md5, or size where no checksum is published;
sha256 where one is declared or recorded). A file already present is checked
too, and reported (exit status 1) when it does not match.
The manifest is ``mrcnn/weights/manifest.json`` (Mask R-CNN files) plus the
pretrained files each registered backbone declares (``imagenet-<backbone>``);
see ``weights/README.md``.
"""

import argparse
import os
import sys

from mrcnn.weights import catalog, files


def expand_names(names):
    """Manifest names for the command-line names ("all", "imagenet" or exact names)."""
    known = [e["name"] for e in catalog.manifest()["files"]]
    out = []
    for name in names:
        if name == "all":
            out += known
        elif name == "imagenet":
            out += [n for n in known if n.startswith("imagenet-")]
        elif name in known:
            out.append(name)
        else:
            raise SystemExit(f"unknown weights {name!r}; known: all, imagenet, {', '.join(known)}")
    return list(dict.fromkeys(out))


def list_files():
    print(f"{'name':30} {'file':56} {'check':6} local copy")
    for entry in catalog.manifest()["files"]:
        local = files.find_weights(entry) or "-"
        print(f"{entry['name']:30} {entry['file']:56} {entry['verify']:6} {local}")
    print("searched: " + ", ".join(f"{label} ({d})" for label, d in files.search_dirs()))


def verify(names, directory):
    failed = 0
    for name in names:
        entry = catalog.get_entry(name)
        path = (os.path.join(directory, entry["file"]) if directory
                else files.find_weights(name))
        if not path or not os.path.isfile(path):
            print(f"{name}: missing ({entry['file']})")
            failed += 1
            continue
        check = files.verify_file(path, entry)
        status = "ok" if check["ok"] else "FAILED: " + "; ".join(check["problems"])
        print(f"{name}: {path}: {status} ({check['size']:,} bytes, md5 {check['md5']})")
        for warning in check["warnings"]:
            print(f"  warning: {warning}")
        failed += not check["ok"]
    return failed


def download(names, directory, timeout, force):
    failed = 0
    for name in names:
        existing = None if force else files.find_weights(name)
        if directory and not force:
            candidate = os.path.join(directory, catalog.get_entry(name)["file"])
            existing = candidate if os.path.isfile(candidate) else None
        if existing:
            check = files.verify_file(existing, name)
            if check["ok"]:
                print(f"{name}: already present at {existing} (use --force to download again)")
            else:
                print(f"{name}: {existing} is present but does not match the manifest "
                      f"({'; '.join(check['problems'])}); use --force to replace it",
                      file=sys.stderr)
                failed += 1
            continue
        try:
            files.download_weights(name, directory=directory, timeout=timeout)
        except (OSError, ValueError) as exc:
            print(f"{name}: {exc}", file=sys.stderr)
            failed += 1
    return failed


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*", help="'all', 'imagenet' or manifest names")
    parser.add_argument("--list", action="store_true", help="list known files and local copies")
    parser.add_argument("--verify", action="store_true",
                        help="check local copies against the manifest; download nothing")
    parser.add_argument("--dir", default=None, help="folder to download to / verify in")
    parser.add_argument("--timeout", type=float, default=files.DOWNLOAD_TIMEOUT_S,
                        help="socket timeout in seconds (default %(default)s)")
    parser.add_argument("--force", action="store_true", help="download even if present")
    args = parser.parse_args(argv)
    if args.list or not args.names:
        list_files()
        return 0
    names = expand_names(args.names)
    failed = verify(names, args.dir) if args.verify else download(
        names, args.dir, args.timeout, args.force)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
