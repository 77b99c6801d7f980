"""srnas: neural architecture search for single-image super-resolution, reproduced.

The library behind the pipeline stages in ``pipeline/``. One concept per module; see the
README for the map.
"""

__version__ = "0.1.0"
