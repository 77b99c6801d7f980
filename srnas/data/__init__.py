"""Data: image I/O and validation, MATLAB-exact bicubic resizing, sources and splits."""

__all__ = ["imresize"]


def __getattr__(name: str):
    # ``srnas.data.imresize`` is imported on first use: the resize module imports torch, and
    # light submodules (splits, used while the papers declare their params) must not.
    if name == "imresize":
        from srnas.data.resize import imresize

        return imresize
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
