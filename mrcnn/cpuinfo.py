"""What this machine's CPU offers, read once from Linux's /proc/cpuinfo.

Kernel choices that were measured to depend on the CPU read it here:
`mrcnn.training.precision.cpu_bfloat16_is_fast` (bfloat16 by default) and
`mrcnn.heads.same_conv` (convolution gradients as forward convolutions on
CPUs without AVX-512).
"""

import functools


@functools.lru_cache(maxsize=4)
def cpu_features(cpuinfo="/proc/cpuinfo"):
    """(vendor_id, frozenset of flags) of the CPU; ("", frozenset()) where unreadable.

    Args:
        cpuinfo: the file to read (Linux's format: ``key : value`` lines, one
            block per logical CPU); tests pass their own.
    """
    try:
        with open(cpuinfo) as f:
            text = f.read()
    except OSError:
        return "", frozenset()
    flags, vendor = set(), ""
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "flags":
            flags.update(value.split())
        elif key.strip() == "vendor_id":
            vendor = value.strip()
    return vendor, frozenset(flags)
