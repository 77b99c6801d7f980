"""Genotype formats of the built-in search spaces, one module each, without torch.

Each module registers its :class:`~srnas.genotype.GenotypeSpec` (validation and one-line
text) so that reading, checking and hashing a genotype never imports the network code in
``srnas.spaces``. :mod:`srnas.catalog` loads them; a new space adds its format here.
"""
