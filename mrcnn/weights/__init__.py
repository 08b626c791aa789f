"""Weight files: the manifest of known files, finding / downloading them, by-name HDF5.

    from mrcnn.weights import locate_weights, download_trained_weights
"""
