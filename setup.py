"""Install the `mrcnn` and `backbones` packages.

Distribution name: mrcnn-keras3 (import name: mrcnn).
"""

from setuptools import find_packages, setup

setup(
    name="mrcnn-keras3",
    version="0.1.0",
    description="Mask R-CNN for instance segmentation on Keras 3 (TensorFlow, JAX, PyTorch), "
                "with pluggable backbones, 28N mask heads and an LZ4 sample cache; "
                "built for cell and nucleus segmentation.",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    license="MIT",
    python_requires=">=3.10",
    packages=find_packages(include=["mrcnn", "mrcnn.*", "backbones", "backbones.*"]),
    package_data={"mrcnn.weights": ["manifest.json"]},
    install_requires=[
        "keras>=3.3",
        "tensorflow>=2.16",
        "tensorboard",
        "numpy",
        "scikit-image",
        "scipy",
        "lz4",
        "h5py",
        "matplotlib",
        "pycocotools",
    ],
    extras_require={
        # The default backend. Kaggle images already ship TensorFlow.
        "tensorflow": ["tensorflow>=2.16"],
        "jax": ["jax"],
        "imgaug": ["imgaug"],
        "albumentations": ["albumentations"],
        # Exported models: ONNX export (TensorFlow backend) and ONNX Runtime.
        "export": ["onnx", "onnxruntime", "tf2onnx"],
        "test": ["pytest", "pytest-xdist", "tensorflow>=2.16", "jax", "nbclient", "nbformat", "ipykernel",
                 "albumentations", "onnx", "onnxruntime", "tf2onnx"],
    },
    classifiers=[
        "Programming Language :: Python :: 3",
        "Topic :: Scientific/Engineering :: Image Recognition",
    ],
)
