"""The shape every paper's pipeline shares, so a paper module only fills in its specifics.

split → search (per variant and seed) → derive → retrain (per scale; x3/x4 may warm-start
from x2) → evaluate → complexity → tables. A :class:`Recipe` subclass names its search
space, variants, params keys and the search/derive/retrain bodies; :meth:`Recipe.stages`
turns the params into concrete stages for both workflow engines.

Paths (deterministic, no timestamps):
  data/splits/<paper>.json                 the paper's split of data/hr
  results/<paper>/search/<run>/            supernet, snapshots, history, search cost
  results/<paper>/genotypes/<run>.json     derived (or published) genotype
  results/<paper>/models/<run>_x<s>.pt     retrained network (srnas.modelfile)
  results/<paper>/eval/<run>_x<s>.json     evaluate-stage metrics
  results/<paper>/complexity/<run>_x<s>.json
  checkpoints/<paper>/<stage>/             resume state, outside the declared outputs
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from srnas.dag import Stage
from srnas.errors import SrnasError
from srnas.params import Params
from srnas.registry import Registry

HR, LR, BENCH, LR_BENCH = "data/hr", "data/lr", "data/benchmarks", "data/lr_benchmarks"


@dataclass(frozen=True)
class Measurement:
    """A paper-specific measurement stage (e.g. HiNAS's supernet memory with and without
    cell sharing): ``run(params, out_path, mlflow_run)`` writes one JSON file."""

    name: str
    keys: tuple[str, ...]
    run: Callable[[Params, Path, Any], None]
    deps: tuple[str, ...] = ()
    gpu: int = 0
    runtime: int = 30


@dataclass(frozen=True)
class RetrainJob:
    """One network to retrain: ``run`` names it; ``genotype`` is a file (searched or published)."""

    run: str
    genotype: str
    variant: str
    seed: int
    scales: tuple[int, ...]
    label: str
    arch: str | None = None   # for the complexity stage: an ARCHS name (default: the genotype)


class Recipe:
    """Base class of a paper's recipe; subclasses set the class attributes and bodies."""

    name: str = ""                 # params block and registry name, e.g. "dlsr"
    space: str = ""                # search space in srnas.spaces.SPACES
    warm_start: bool = False       # x3/x4 start from the x2 weights (all but the upsampler)

    # ---- paths -------------------------------------------------------------------------
    def split_file(self) -> str:
        return f"data/splits/{self.name}.json"

    def search_dir(self, run: str) -> str:
        return f"results/{self.name}/search/{run}"

    def genotype_file(self, run: str) -> str:
        return f"results/{self.name}/genotypes/{run}.json"

    def model_file(self, run: str, scale: int) -> str:
        return f"results/{self.name}/models/{run}_x{scale}.pt"

    def eval_file(self, run: str, scale: int) -> str:
        return f"results/{self.name}/eval/{run}_x{scale}.json"

    def complexity_file(self, run: str, scale: int) -> str:
        return f"results/{self.name}/complexity/{run}_x{scale}.json"

    def checkpoint_dir(self, stage: str) -> str:
        return f"checkpoints/{self.name}/{stage}"

    # ---- what to run (subclasses) -------------------------------------------------------
    def search_runs(self, params: Params) -> list[tuple[str, int]]:
        """(variant, seed) pairs to search."""
        return []

    def retrain_jobs(self, params: Params) -> list[RetrainJob]:
        return []

    def measurements(self, params: Params) -> list[Measurement]:
        return []

    def measurement_file(self, name: str) -> str:
        return f"results/{self.name}/{name}.json"

    def search_keys(self) -> tuple[str, ...]:
        return ()

    def retrain_keys(self) -> tuple[str, ...]:
        return ()

    @staticmethod
    def run_name(variant: str, seed: int) -> str:
        return f"{variant}_s{seed}"

    # ---- bodies (subclasses) ------------------------------------------------------------
    def search(self, params: Params, *, variant: str, seed: int, split: dict,
               data: tuple[Path, Path], out: Path, checkpoints: Path, run: Any) -> None:
        """Search; write the result into the (temporary) folder ``out``."""
        raise NotImplementedError

    def derive(self, params: Params, *, search: Path, out: Path, run: Any):
        """Write the genotype JSON ``out`` from a search folder; return the Genotype.

        Default: the search wrote its chosen genotype under "genotype" in result.json."""
        from srnas.genotype import Genotype
        from srnas.io import read_json

        result = read_json(search / "result.json")
        genotype = Genotype.from_dict(result["genotype"], where=str(search / "result.json"))
        genotype.save(out)
        return genotype

    # ---- helpers of the retrain bodies -------------------------------------------------
    RETRAIN_SCALES = (2, 3, 4)     # the order of the budgets' per-scale lists (patch_hr)

    def retrain_genotype(self, path: str | Path):
        """The genotype file to retrain; it must belong to this recipe's search space (a
        genotype of another space would otherwise build that space's network under this
        paper's recipe, or fail on its constructor settings)."""
        from srnas.genotype import Genotype

        genotype = Genotype.load(path)
        if genotype.space != self.space:
            raise SrnasError(f"{path}: a genotype of search space {genotype.space!r}, but the "
                             f"{self.name} retraining takes {self.space!r} genotypes; pass a "
                             f"{self.space} genotype or retrain it with its own paper")
        return genotype

    def retrain_patch(self, params: Params, scale: int) -> int:
        """The HR patch side of the active budget's retraining at ``scale``."""
        key = f"{self.name}.budgets.{params.get('budget')}.retrain.patch_hr"
        patches = params.get(key)
        i = self.RETRAIN_SCALES.index(scale) if scale in self.RETRAIN_SCALES else None
        if i is None or i >= len(patches):
            raise SrnasError(f"params: {key} = {patches}: no patch size for x{scale} (the list "
                             f"gives the HR patch of x{', x'.join(map(str, self.RETRAIN_SCALES))}, "
                             f"in that order)")
        return patches[i]

    def retrain(self, params: Params, *, variant: str, seed: int, genotype: Path, scale: int,
                split: dict, data: tuple[Path, Path], init: Path | None, out: Path,
                checkpoints: Path, run: Any) -> None:
        """Train ``genotype`` at ``scale``; write a model file (srnas.modelfile) to ``out``."""
        raise NotImplementedError

    # ---- the stages ---------------------------------------------------------------------
    def stages(self, params: Params) -> list[Stage]:
        p = self.name
        split = self.split_file()
        out = [Stage(f"split_{p}", "pipeline.split", ("--paper", p, "--hr", HR, "--out", split),
                     (HR,), (split,), (f"{p}.split", "data.source"), paper=p, mem_mb=1000, runtime=5)]
        for variant, seed in self.search_runs(params):
            run = self.run_name(variant, seed)
            name = f"search_{p}_{run}".replace("-", "_")
            out.append(Stage(
                name, "pipeline.search",
                ("--paper", p, "--variant", variant, "--seed", str(seed), "--hr", HR, "--lr", LR,
                 "--split", split, "--checkpoints", self.checkpoint_dir(name), "--out", self.search_dir(run)),
                (HR, LR, split), (self.search_dir(run),), self.search_keys(), paper=p,
                out_dirs=(self.search_dir(run),), threads=2, runtime=60 * 24, gpu=1))
            out.append(Stage(
                f"derive_{p}_{run}".replace("-", "_"), "pipeline.derive",
                ("--paper", p, "--search", self.search_dir(run), "--out", self.genotype_file(run)),
                (self.search_dir(run),), (self.genotype_file(run),), (), paper=p, mem_mb=2000, runtime=5))
        for m in self.measurements(params):
            out.append(Stage(f"measure_{p}_{m.name}", "pipeline.measure",
                             ("--paper", p, "--measurement", m.name, "--out", self.measurement_file(m.name)),
                             m.deps, (self.measurement_file(m.name),), m.keys, paper=p, threads=2,
                             gpu=m.gpu, runtime=m.runtime))
        for job in self.retrain_jobs(params):
            for scale in job.scales:
                name = f"retrain_{p}_{job.run}_x{scale}".replace("-", "_")
                init = (self.model_file(job.run, 2)
                        if self.warm_start and scale != 2 and 2 in job.scales else None)
                args = ["--paper", p, "--variant", job.variant, "--seed", str(job.seed),
                        "--genotype", job.genotype, "--scale", str(scale), "--hr", HR, "--lr", LR,
                        "--split", split]
                deps = [HR, LR, split, job.genotype]
                if init:
                    args += ["--init", init]
                    deps.append(init)
                args += ["--checkpoints", self.checkpoint_dir(name), "--out", self.model_file(job.run, scale)]
                out.append(Stage(name, "pipeline.retrain", tuple(args), tuple(deps),
                                 (self.model_file(job.run, scale),), self.retrain_keys(), paper=p,
                                 threads=2, runtime=60 * 24 * 3, gpu=1))
                out.append(Stage(
                    f"evaluate_{p}_{job.run}_x{scale}".replace("-", "_"), "pipeline.evaluate",
                    ("--model", "trained", "--weights", self.model_file(job.run, scale), "--scale", str(scale),
                     "--benchmark-root", BENCH, "--lr-root", LR_BENCH, "--sets", "all", "--no-progress",
                     "--out", self.eval_file(job.run, scale)),
                    (BENCH, LR_BENCH, self.model_file(job.run, scale)), (self.eval_file(job.run, scale),),
                    ("evaluate.grey", "device", "cuda"), paper=p, threads=2, runtime=60))
                out.append(Stage(
                    f"complexity_{p}_{job.run}_x{scale}".replace("-", "_"), "pipeline.complexity",
                    ("--arch", job.arch or job.genotype, "--scale", str(scale),
                     "--out", self.complexity_file(job.run, scale)),
                    () if job.arch else (job.genotype,), (self.complexity_file(job.run, scale),), (), paper=p,
                    mem_mb=2000, runtime=5))
        return out


def read_split(path: str | Path) -> dict:
    from srnas.io import read_json

    data = read_json(path)
    if not isinstance(data, dict) or "parts" not in data:
        raise SrnasError(f"{path}: not a split manifest (no 'parts')")
    return data


def split_files(hr_dir: Path, split: dict, part: str) -> list[Path]:
    """The HR files of one part of a split manifest (found under train/ or valid/)."""
    if part not in split["parts"]:
        raise SrnasError(f"split has no part {part!r} (parts: {', '.join(split['parts'])})")
    out = []
    for name in split["parts"][part]["files"]:
        for folder in ("train", "valid"):
            if (hr_dir / folder / name).is_file():
                out.append(hr_dir / folder / name)
                break
        else:
            raise SrnasError(f"{name} (split part {part!r}) is not under {hr_dir}/train or valid")
    return out



def split_images(data: tuple[Path, Path], split: dict, scale: int, *parts: str):
    """The HR/LR pairs of some parts of a split (every part when none is named; retraining
    trains on the whole pool, searches on their named parts). ``data`` is (HR dir, LR dir)."""
    from srnas.data.patches import PairedImages

    hr_dir, lr_dir = data
    files = [f for part in (parts or split["parts"]) for f in split_files(hr_dir, split, part)]
    return PairedImages(files, lr_dir / "train", scale)


# The papers' recipes by name; each paper module registers its own (see srnas.catalog).
PAPERS: Registry[Recipe] = Registry("paper")
