"""TrilevelNAS: Trilevel Neural Architecture Search for Efficient Single Image
Super-Resolution (Wu et al.; papers/002_1aa51cbec79c1574.txt; facts in FACTS.md §4).

What is here so far: the published architectures as named models (``--arch``), counted
under the paper's convention ``lr256`` (MACs at a 256x256 LR input, x4, in G), and the tree
supernet (:mod:`srnas.spaces.trilevelnas_supernet`: sparsestmax path and op weights, Gumbel
widths), which any differentiable strategy can search. The paper's own recipe (teacher,
distillation, sandwich pretraining, the FLOPs term) is not registered yet, so this module
adds no Recipe to PAPERS and no params block.

- Search space and networks: :mod:`srnas.spaces.trilevelnas` (ops, RiR blocks, the B and A
  tails, superkernels); genotype format :mod:`srnas.formats.trilevelnas`; sparsestmax and
  its radius schedule: :mod:`srnas.sparsestmax`.
- Published architectures (appendix C, Tables 7-10, transcribed op by op with their widths
  into ``srnas/genotypes/trilevelnas_*.json``; the tables pin every op and width down):

  - ``trilevelnas-b-t8``: Table 8, path [0, 0, 0]; printed as Table 1's TrilevelNAS-B
    (0.24M, 15.4 GFLOPS).
  - ``trilevelnas-b-t9``: Table 9, path [0, 0, 0, 0, 0, 1]; Table 2's TrilevelNAS-B (0.51M,
    33.3). ``trilevelnas-b`` is the same network (the PSNR-oriented TrilevelNAS-B of Table 2).
  - ``trilevelnas-b-t10``: Table 10, path [0, 0, 1, 1]; Table 3's TrilevelNAS-B (0.27M, 17.33).
  - ``trilevelnas-a``: Table 7, path [0, 0, 0, 1, 0, 1], plain A tail; ``trilevelnas-a-hrconv``:
    the same with ESRGAN's HR conv. Table 1's TrilevelNAS-A: 0.34M, 117.4.

  Counted here (tests/test_trilevelnas_space.py): t8 234,192 params / 15.34 G, t9 509,072 /
  33.35 G, t10 264,496 / 17.32 G (FACTS.md §4's checks). Table 3 prints 0.27M / 17.33 for
  the Table 10 network, 0.26M / 17.32 here. TrilevelNAS-A: 335,427 params / 78.43 G with
  the plain A tail, 372,355 / 117.08 G with the HR conv: the printed 0.34M matches the
  first, the printed 117.4 G the second (FACTS.md §4: UNKNOWN which tail the paper used), so
  both are named models, to be shown beside what the paper printed (:data:`PRINTED`).
  The paper's one-decimal GFLOPS do not round our counts consistently (15.34 printed 15.4,
  33.35 printed 33.3); FACTS.md §4 takes them as matching.

No weights were released (FACTS.md §4: no public code).
"""

from __future__ import annotations

from srnas.zoo import ARCHS, ArchEntry

PAPER = "trilevelnas"
CONVENTION = "lr256"
SCALE = 4                       # every TrilevelNAS result is x4

# ARCHS name -> (packaged genotype, hr_conv, description)
PUBLISHED = {
    "trilevelnas-b-t8": ("trilevelnas_b_t8", False,
                         "TrilevelNAS-B, visualization-oriented (appendix Table 8; Table 1's TrilevelNAS-B)"),
    "trilevelnas-b-t9": ("trilevelnas_b_t9", False,
                         "TrilevelNAS-B, PSNR-oriented (appendix Table 9; Table 2's TrilevelNAS-B)"),
    "trilevelnas-b-t10": ("trilevelnas_b_t10", False,
                          "TrilevelNAS-B, PSNR-oriented, AIM 2020 setup (appendix Table 10; Table 3)"),
    "trilevelnas-b": ("trilevelnas_b_t9", False,
                      "TrilevelNAS-B of Table 2 (PSNR-oriented) = appendix Table 9"),
    "trilevelnas-a": ("trilevelnas_a", False,
                      "TrilevelNAS-A (appendix Table 7), A tail without HR conv: matches the printed 0.34M"),
    "trilevelnas-a-hrconv": ("trilevelnas_a", True,
                             "TrilevelNAS-A (appendix Table 7) with ESRGAN's HR conv: matches the printed "
                             "117.4 GFLOPS"),
}

# What the paper printed for each network (x4; params in M, 'GFLOPS (256x256)'), by table
# and row: (where, params_m, gflops).
PRINTED = {
    "trilevelnas-b-t8": ("Table 1, TrilevelNAS-B", 0.24, 15.4),
    "trilevelnas-b-t9": ("Table 2, TrilevelNAS-B", 0.51, 33.3),
    "trilevelnas-b-t10": ("Table 3, TrilevelNAS-B", 0.27, 17.33),
    "trilevelnas-b": ("Table 2, TrilevelNAS-B", 0.51, 33.3),
    "trilevelnas-a": ("Table 1, TrilevelNAS-A", 0.34, 117.4),
    "trilevelnas-a-hrconv": ("Table 1, TrilevelNAS-A", 0.34, 117.4),
}


def _arch(name: str):
    genotype, hr_conv, _ = PUBLISHED[name]

    def build(scale: int):
        from srnas.genotype import packaged
        from srnas.spaces import build_network

        return build_network(packaged(genotype), scale, hr_conv=hr_conv)

    return build


for _name, (_genotype, _hr_conv, _description) in PUBLISHED.items():
    ARCHS.register(_name)(ArchEntry(_arch(_name), PAPER, CONVENTION, _description))
