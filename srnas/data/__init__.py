"""Data: image I/O and validation, MATLAB-exact bicubic resizing, sources and splits."""

from srnas.data.resize import imresize

__all__ = ["imresize"]
