"""Backend-agnostic model kernels written with ``keras.ops``."""
