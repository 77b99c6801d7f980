"""The shape every paper's pipeline shares, so a paper module only fills in its specifics.

split → phases → evaluate → complexity → tables. A paper's method is a sequence of
:class:`Phase` s, each a search (search → derive, per run) or a training (retrain per
scale, which may warm-start from another scale's model, ``<paper>.warm_start``). The
default is one search and one training (search per variant and seed, then retrain the
derived genotypes); a paper lists more phases when one step needs another's result (a
teacher trained before a search, a second search for the first one's trained network).
A phase's stages read earlier phases' outputs as named inputs (``--input NAME=PATH``),
which the run specs (:class:`SearchRun`, :class:`RetrainJob`) give and the stage table
checks and declares as dependencies, so both workflow engines order the phases.

A :class:`Recipe` subclass names its search space, phases, runs, params keys and the
search/derive/retrain bodies; :meth:`Recipe.stages` turns the params into concrete stages.

Paths (deterministic, no timestamps):
  data/splits/<paper>.json                 the paper's split of data/hr
  results/<paper>/search/<run>/            supernet, snapshots, history, search cost
  results/<paper>/genotypes/<run>.json     derived (or published) genotype
  results/<paper>/models/<run>_x<s>.pt     retrained network (srnas.modelfile)
  results/<paper>/eval/<run>_x<s>.json     evaluate-stage metrics
  results/<paper>/complexity/<run>_x<s>.json   Params / Multi-Adds of that model file
  checkpoints/<paper>/<stage>/             resume state, outside the declared outputs
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from srnas import catalog
from srnas.dag import TORCH_THREADS, Stage
from srnas.errors import SrnasError
from srnas.params import Field, Params
from srnas.registry import Registry

HR, LR, BENCH, LR_BENCH = "data/hr", "data/lr", "data/benchmarks", "data/lr_benchmarks"
NOISY_BENCH = "data/noisy_benchmarks"   # denoising test inputs (pipeline.make_lr --sigmas)


@dataclass(frozen=True)
class Measurement:
    """A paper-specific stage that writes one file: a measurement (e.g. a supernet's memory
    with and without some sharing) or a paper's own step outside the search/train phases
    (a teacher network the searches distil from): ``run(params, out_path, mlflow_run)``
    writes ``out`` (default :meth:`Recipe.measurement_file`: ``results/<paper>/<name>.json``)."""

    name: str
    keys: tuple[str, ...]
    run: Callable[[Params, Path, Any], None]
    deps: tuple[str, ...] = ()
    gpu: int = 0
    runtime: int = 30
    out: str | None = None


PHASE_KINDS = ("search", "train")


@dataclass(frozen=True)
class Phase:
    """One step of a paper's method.

    ``kind`` "search": each run is a search stage then a derive stage (a genotype file);
    "train": each job is a retrain stage per scale (a model file) with its evaluate and
    complexity stages. ``inputs`` are the names of the ``--input NAME=PATH`` files its
    search or retrain stages read, ``derive_inputs`` those of its derive stages (derivation
    that scores sampled children needs the data and split). An input named after a phase
    must be an output of that phase, which must come earlier; any other name is a file from
    outside the paper's stages (data, a published genotype). Every run of the phase gives
    exactly these names.
    """

    name: str
    kind: str
    inputs: tuple[str, ...] = ()
    derive_inputs: tuple[str, ...] = ()


@dataclass(frozen=True)
class SearchRun:
    """One search of a search phase, named ``run`` (``<variant>_s<seed>``, prefixed with the
    phase when the phase is not the default "search"); ``inputs`` / ``derive_inputs`` map
    the phase's input names to paths."""

    variant: str
    seed: int
    phase: str = "search"
    inputs: Mapping[str, str] = field(default_factory=dict)
    derive_inputs: Mapping[str, str] = field(default_factory=dict)
    name: str | None = None

    @property
    def run(self) -> str:
        if self.name:
            return self.name
        base = Recipe.run_name(self.variant, self.seed)
        return base if self.phase == "search" else f"{self.phase}-{base}"


@dataclass(frozen=True)
class RetrainJob:
    """One network to retrain: ``run`` names it; ``genotype`` is a file (searched or
    published). ``inputs`` map the phase's input names to paths; ``{scale}`` in a path
    becomes the scale being trained (a teacher at the same scale). ``sigma``: a denoising
    job (scale 1) at that noise level: its retrain and evaluate stages get ``--sigma`` and
    the evaluation reads the noisy test sets (the recipe's :meth:`Recipe.data_dirs`).
    ``eval_args`` / ``eval_deps``: more arguments of its evaluate stages (other metrics, such
    as ``--metrics psnr,ssim,lpips --lpips-weights F``) and the files they read."""

    run: str
    genotype: str
    variant: str
    seed: int
    scales: tuple[int, ...]
    label: str
    phase: str = "retrain"
    inputs: Mapping[str, str] = field(default_factory=dict)
    sigma: float | None = None
    eval_args: tuple[str, ...] = ()
    eval_deps: tuple[str, ...] = ()

    def inputs_at(self, scale: int) -> dict[str, str]:
        return {k: v.replace("{scale}", str(scale)) for k, v in self.inputs.items()}


def parse_warm_start(value: object, key: str) -> dict[int, int | None]:
    """``<paper>.warm_start`` as {target scale: source scale or None}.

    The target scale's retraining starts from the source scale's model (all but the
    scale-dependent upsampling part); None (or absence) trains it from scratch, which
    ``{3: null}`` says explicitly where a params merge cannot delete a key (Snakemake's
    ``--config``). Keys may arrive as strings from a dotted override
    (``--set dlsr.warm_start.3=2``). SrnasError naming ``key`` for anything else: a
    non-scale, a scale starting from itself, a cycle.
    """
    if not isinstance(value, Mapping):
        raise SrnasError(f"params: {key} must be a mapping of target scale to source scale "
                         f"(e.g. {{3: 2, 4: 2}}), got {value!r}")

    def scale(x: object, where: str) -> int:
        if isinstance(x, str) and x.isdigit():
            x = int(x)
        if isinstance(x, bool) or not isinstance(x, int) or x < 1:
            raise SrnasError(f"params: {where}: expected a scale (a positive integer), got {x!r}")
        return x

    out: dict[int, int | None] = {}
    # A dotted override adds "3" beside the file's 3: it is the later word, so it wins.
    for target, source in sorted(value.items(), key=lambda kv: isinstance(kv[0], str)):
        t = scale(target, f"{key} (a target scale)")
        out[t] = None if source is None else scale(source, f"{key}.{t}")
        if out[t] == t:
            raise SrnasError(f"params: {key}.{t} = {t}: a scale cannot start from its own model")
    for start in out:
        seen, s = [start], out[start]
        while s is not None:
            if s in seen:
                chain = " <- ".join(f"x{x}" for x in [*seen, s])
                raise SrnasError(f"params: {key}: warm starts form a cycle ({chain})")
            seen.append(s)
            s = out.get(s)
    return out


def warm_start_field(paper: str, default: Mapping[int, int]) -> Field:
    """The ``<paper>.warm_start`` params field (see :func:`parse_warm_start`)."""

    def check(value) -> bool:
        parse_warm_start(value, f"{paper}.warm_start")
        return True

    return Field(dict, dict(default), check=check,
                 doc="target scale -> source scale whose model it starts from; {} trains every "
                     "scale from scratch")


class Recipe:
    """Base class of a paper's recipe; subclasses set the class attributes and bodies."""

    name: str = ""                 # params block and registry name
    space: str = ""                # search space in srnas.spaces.SPACES
    # The method's steps in order; the default: search, then retrain what was found.
    phases: tuple[Phase, ...] = (Phase("search", "search"), Phase("retrain", "train"))
    # Split parts the searches read: the stage table refuses a ``<paper>.split`` without
    # them, before any stage runs (() : not checked).
    search_parts: tuple[str, ...] = ()
    # Whether results/table2.md reads this recipe's params block (its rows are there).
    cross_table: bool = True
    # The Multi-Adds convention of the complexity stages (srnas.complexity); None: the
    # trained network's space's own (a study over several spaces pins one).
    convention: str | None = None

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

    def data_dirs(self, params: Params) -> tuple[str, str | None, str, str]:
        """(training HR, training LR or None, benchmark sets, their degraded inputs) that the
        stages read: the shared ``data/`` folders by default; a task without LR images
        (denoising) gives None and its stages get no ``--lr``."""
        return HR, LR, BENCH, LR_BENCH

    def data_keys(self) -> tuple[str, ...]:
        """Params keys :meth:`data_dirs` reads besides the recipe's own block (a stage that
        calls it at run time, such as the crops figure, declares them)."""
        return ()

    # ---- what to run (subclasses) -------------------------------------------------------
    def search_runs(self, params: Params) -> list[tuple[str, int] | SearchRun]:
        """The searches: :class:`SearchRun` specs, or (variant, seed) pairs (shorthand for a
        run of the "search" phase without inputs)."""
        return []

    def search_specs(self, params: Params) -> list[SearchRun]:
        return [r if isinstance(r, SearchRun) else SearchRun(*r) for r in self.search_runs(params)]

    def phase(self, name: str, kind: str | None = None) -> Phase:
        """The phase ``name`` (of ``kind`` when given); SrnasError naming the known ones."""
        for ph in self.phases:
            if ph.name == name and kind in (None, ph.kind):
                return ph
        known = ", ".join(ph.name for ph in self.phases if kind in (None, ph.kind)) or "none"
        raise SrnasError(f"{self.name}: no {kind + ' ' if kind else ''}phase {name!r} "
                         f"(the recipe's: {known})")

    def check_inputs(self, phase: str, kind: str, given: Mapping[str, object], *,
                     derive: bool = False) -> None:
        """The ``--input`` names of a stage are exactly the phase's declared ones."""
        ph = self.phase(phase, kind)
        want = ph.derive_inputs if derive else ph.inputs
        missing = [n for n in want if n not in given]
        unknown = sorted(n for n in given if n not in want)
        if missing or unknown:
            what = f"{self.name} phase {phase!r}{' (derive)' if derive else ''}"
            raise SrnasError(f"{what} takes inputs {', '.join(want) or '(none)'}; "
                             + "; ".join(filter(None, [
                                 f"missing --input {', '.join(missing)}" if missing else "",
                                 f"unknown --input {', '.join(unknown)}" if unknown else ""])))

    def warm_starts(self, params: Params) -> dict[int, int | None]:
        """``<paper>.warm_start``: {target scale: source scale}."""
        key = f"{self.name}.warm_start"
        return parse_warm_start(params.get(key), key)

    def warm_start_source(self, params: Params, scale: int) -> int | None:
        return self.warm_starts(params).get(scale)

    def retrain_jobs(self, params: Params) -> list[RetrainJob]:
        return []

    def measurements(self, params: Params) -> list[Measurement]:
        return []

    def measurement_file(self, name: str) -> str:
        return f"results/{self.name}/{name}.json"

    def search_keys(self) -> tuple[str, ...]:
        return ()

    def retrain_keys(self) -> tuple[str, ...]:
        """Include ``<paper>.warm_start``: the retrain stage checks its ``--init`` against it."""
        return ()

    def derive_keys(self) -> tuple[str, ...]:
        return ()

    def phase_keys(self, phase: str, kind: str) -> tuple[str, ...]:
        """The params keys the stages of one phase declare and their scripts (pipeline.search
        / pipeline.retrain ``--phase``) may read; ``kind`` "search" or "train". Default: all of
        :meth:`search_keys` / :meth:`retrain_keys`. A recipe whose phases read different
        settings narrows them per phase, so that an edit reruns only the phases that read it."""
        return self.search_keys() if kind == "search" else self.retrain_keys()

    @staticmethod
    def run_name(variant: str, seed: int) -> str:
        return f"{variant}_s{seed}"

    # ---- bodies (subclasses) ------------------------------------------------------------
    def search(self, params: Params, *, variant: str, seed: int, split: dict,
               data: tuple[Path, Path], out: Path, checkpoints: Path, run: Any,
               phase: str = "search", inputs: Mapping[str, Path] | None = None) -> None:
        """Search; write the result into the (temporary) folder ``out``. ``inputs``: the
        phase's named inputs (checked against :attr:`Phase.inputs` by the stage script)."""
        raise NotImplementedError

    def derive(self, params: Params, *, search: Path, out: Path, run: Any,
               phase: str = "search", inputs: Mapping[str, Path] | None = None):
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

    def save_retrained(self, out: Path, result: Any, genotype: Any, scale: int, kwargs: Mapping[str, Any],
                       *, params: Params, variant: str, seed: int, device: Any) -> None:
        """Write a retrain body's model file (:mod:`srnas.modelfile`) from its
        :class:`srnas.train.TrainResult`, with the meta every retraining records: the paper,
        the training history (the training-curve figures read it), variant, seed, budget,
        seconds and device."""
        from srnas.device import device_name
        from srnas.modelfile import save_model

        save_model(out, result.model, genotype, scale, kwargs,
                   meta={"paper": self.name, "history": result.history, "variant": variant, "seed": seed,
                         "budget": params.get("budget"), "seconds": result.seconds,
                         "device": device_name(device)})

    def fit(self, params: Params, *, model: Any, loss_fn: Any, images: Any, config: Any, device: Any,
            checkpoints: Path, context: Mapping[str, Any], run: Any, logged: Mapping[str, Any],
            out: Path, genotype: Any, kwargs: Mapping[str, Any], variant: str, seed: int,
            init_state: Mapping[str, Any] | None = None, init_exclude: tuple[str, ...] = (),
            batches: Callable[[int], Any] | None = None, train_step: Any = None) -> None:
        """The part every supervised retraining shares: log ``logged`` as the run's params;
        train ``model`` (:func:`srnas.train.train` under ``config``, a
        :class:`srnas.train.TrainConfig`) with ``loss_fn`` on the seeded patch batches of
        ``images`` (batch i: :func:`srnas.data.patches.sample_batch` at step i), checkpointed in
        ``checkpoints`` (``context``: what a checkpoint must match, else it is archived and the
        training starts over); ``init_state``/``init_exclude``: warm-start weights and the
        name prefixes they skip; write the model file (:meth:`save_retrained`); log the speed.
        ``batches(step)``: another task's batches (denoising: srnas.denoising) instead;
        ``train_step``: a :class:`srnas.train.TrainStep` other than the supervised one
        (distillation from a teacher: :class:`srnas.train.DistillStep`)."""
        from srnas.checkpoint import Checkpointer
        from srnas.data.patches import sample_batch
        from srnas.train import train

        run.log_params(dict(logged))
        if batches is None:
            def batches(step):
                return sample_batch(images, step, seed=seed, batch_size=config.batch_size,
                                    patch_hr=config.patch_hr, scale=config.scale)
        result = train(model, loss_fn, batches, config, device,
                       Checkpointer(checkpoints, every=config.checkpoint_every, on_mismatch="archive",
                                    context=dict(context)),
                       init_state=init_state, init_exclude=init_exclude, train_step=train_step,
                       log=lambda metrics, step: run.log_metrics(metrics, step=step))
        self.save_retrained(out, result, genotype, config.scale, kwargs, params=params, variant=variant,
                            seed=seed, device=device)
        run.log_metrics({"train_seconds": result.seconds, "images_per_second": result.images_per_second})

    def retrain(self, params: Params, *, variant: str, seed: int, genotype: Path, scale: int,
                split: dict, data: tuple[Path, Path], init: Path | None, out: Path,
                checkpoints: Path, run: Any, phase: str = "retrain",
                inputs: Mapping[str, Path] | None = None) -> None:
        """Train ``genotype`` at ``scale``; write a model file (srnas.modelfile) to ``out``.
        ``init``: the model file of the scale it warm-starts from (``<paper>.warm_start``).
        A recipe with denoising jobs (:attr:`RetrainJob.sigma`) also takes ``sigma=``; the
        stage passes it only to those."""
        raise NotImplementedError

    # ---- the stages ---------------------------------------------------------------------
    def stages(self, params: Params) -> list[Stage]:
        """The split, then each phase's stages in phase order (the measurements before the
        first training phase); SrnasError when the phases, runs and inputs do not wire."""
        p = self.name
        split = self.split_file()
        self._check_phases()
        searches, jobs = self.search_specs(params), self.retrain_jobs(params)
        for r in searches:
            self.phase(r.phase, "search")
        for job in jobs:
            self.phase(job.phase, "train")
        if searches and self.search_parts:
            self._check_split_parts(params)
        # Read only when something is retrained: the key is declared by the retrain stages.
        warm = self.warm_starts(params) if jobs else {}
        dirs = self.data_dirs(params)
        out = [Stage(f"split_{p}", "pipeline.split", ("--paper", p, "--hr", dirs[0], "--out", split),
                     (dirs[0],), (split,), (f"{p}.split", "data.source"), paper=p, mem_mb=1000, runtime=5)]
        phase_of: dict[str, str] = {}      # stage name -> its phase
        inputs_of: dict[str, dict[str, str]] = {}
        measured = False
        for ph in self.phases:
            if ph.kind == "train" and not measured:
                out += self._measure_stages(params)
                measured = True
            made = (self._search_stages(ph, [r for r in searches if r.phase == ph.name], inputs_of, dirs)
                    if ph.kind == "search" else
                    self._train_stages(ph, [j for j in jobs if j.phase == ph.name], warm, inputs_of, dirs))
            phase_of.update((s.name, ph.name) for s in made)
            out += made
        if not measured:
            out += self._measure_stages(params)
        self._check_order(out, phase_of, inputs_of)
        return out

    @staticmethod
    def _input_args(names: Iterable[str], given: Mapping[str, str]) -> list[str]:
        return [w for n in names for w in ("--input", f"{n}={given[n]}")]

    @staticmethod
    def _data_args(dirs) -> tuple[list[str], list[str]]:
        """The ``--hr``/``--lr`` arguments and their deps (no ``--lr`` when there is none)."""
        hr, lr = dirs[0], dirs[1]
        return (["--hr", hr] + (["--lr", lr] if lr else []), [hr] + ([lr] if lr else []))

    def _search_stages(self, ph: Phase, runs: list[SearchRun], inputs_of, dirs) -> list[Stage]:
        p, split, out = self.name, self.split_file(), []
        data_args, data_deps = self._data_args(dirs)
        phase_arg = [] if ph.name == "search" else ["--phase", ph.name]
        for r in runs:
            run = r.run
            name = f"search_{p}_{run}".replace("-", "_")
            where = f"{p} search run {run!r}"
            self._check_given(ph, r.inputs, where)
            self._check_given(ph, r.derive_inputs, where + " (derive)", derive=True)
            inputs_of[name] = {n: r.inputs[n] for n in ph.inputs}
            out.append(Stage(
                name, "pipeline.search",
                ("--paper", p, "--variant", r.variant, "--seed", str(r.seed), *phase_arg,
                 *data_args, "--split", split, *self._input_args(ph.inputs, r.inputs),
                 "--checkpoints", self.checkpoint_dir(name), "--out", self.search_dir(run)),
                (*data_deps, split, *inputs_of[name].values()), (self.search_dir(run),),
                self.phase_keys(ph.name, "search"),
                paper=p, out_dirs=(self.search_dir(run),), threads=TORCH_THREADS, runtime=60 * 24, gpu=1))
            derive = f"derive_{p}_{run}".replace("-", "_")
            inputs_of[derive] = {n: r.derive_inputs[n] for n in ph.derive_inputs}
            out.append(Stage(
                derive, "pipeline.derive",
                ("--paper", p, *phase_arg, "--search", self.search_dir(run),
                 *self._input_args(ph.derive_inputs, r.derive_inputs), "--out", self.genotype_file(run)),
                (self.search_dir(run), *inputs_of[derive].values()), (self.genotype_file(run),),
                self.derive_keys(), paper=p, mem_mb=2000, runtime=5))
        return out

    def _measure_stages(self, params: Params) -> list[Stage]:
        p = self.name
        return [Stage(f"measure_{p}_{m.name}", "pipeline.measure",
                      ("--paper", p, "--measurement", m.name, "--out", m.out or self.measurement_file(m.name)),
                      m.deps, (m.out or self.measurement_file(m.name),), m.keys, paper=p, threads=TORCH_THREADS,
                      gpu=m.gpu, runtime=m.runtime)
                for m in self.measurements(params)]

    def _train_stages(self, ph: Phase, jobs: list[RetrainJob], warm: Mapping[int, int | None],
                      inputs_of, dirs) -> list[Stage]:
        p, split, out = self.name, self.split_file(), []
        data_args, data_deps = self._data_args(dirs)
        bench, inputs_root = dirs[2], dirs[3]
        phase_arg = [] if ph.name == "retrain" else ["--phase", ph.name]
        for job in jobs:
            self._check_given(ph, job.inputs, f"{p} retrain job {job.run!r}")
            for scale in job.scales:
                name = f"retrain_{p}_{job.run}_x{scale}".replace("-", "_")
                source = warm.get(scale)
                if source is not None and source not in job.scales:
                    raise SrnasError(
                        f"params: {p}.warm_start: x{scale} starts from the x{source} model, but "
                        f"job {job.run!r} retrains x{', x'.join(map(str, job.scales))} only; "
                        f"retrain x{source} too or train x{scale} from scratch "
                        f"({p}.warm_start.{scale}: null)")
                init = self.model_file(job.run, source) if source is not None else None
                given = job.inputs_at(scale)
                inputs_of[name] = {n: given[n] for n in ph.inputs}
                noise = () if job.sigma is None else ("--sigma", f"{job.sigma:g}")
                args = ["--paper", p, "--variant", job.variant, "--seed", str(job.seed), *phase_arg,
                        "--genotype", job.genotype, "--scale", str(scale), *noise, *data_args,
                        "--split", split, *self._input_args(ph.inputs, given)]
                deps = [*data_deps, split, job.genotype, *inputs_of[name].values()]
                if init:
                    args += ["--init", init]
                    deps.append(init)
                model = self.model_file(job.run, scale)
                args += ["--checkpoints", self.checkpoint_dir(name), "--out", model]
                out.append(Stage(name, "pipeline.retrain", tuple(args), tuple(deps), (model,),
                                 self.phase_keys(ph.name, "train"), paper=p, threads=TORCH_THREADS,
                                 runtime=60 * 24 * 3, gpu=1))
                out.append(Stage(
                    f"evaluate_{p}_{job.run}_x{scale}".replace("-", "_"), "pipeline.evaluate",
                    ("--model", "trained", "--weights", model, "--scale", str(scale), *noise,
                     "--benchmark-root", bench, "--lr-root", inputs_root, "--sets", "all", *job.eval_args,
                     "--no-progress", "--out", self.eval_file(job.run, scale)),
                    (bench, inputs_root, model, *job.eval_deps), (self.eval_file(job.run, scale),),
                    ("evaluate.grey", "device", "cuda"), paper=p, threads=TORCH_THREADS, runtime=60))
                # Counted from the trained model file: the network with exactly the
                # construction settings (width, decoder, ...) the retraining used.
                pinned = ("--convention", self.convention) if self.convention else ()
                out.append(Stage(
                    f"complexity_{p}_{job.run}_x{scale}".replace("-", "_"), "pipeline.complexity",
                    ("--arch", model, "--scale", str(scale), *pinned,
                     "--out", self.complexity_file(job.run, scale)),
                    (model,), (self.complexity_file(job.run, scale),), (), paper=p, mem_mb=2000, runtime=5))
        return out

    # ---- wiring checks ------------------------------------------------------------------
    def _check_phases(self) -> None:
        names = [ph.name for ph in self.phases]
        for i, ph in enumerate(self.phases):
            where = f"{self.name} phase {ph.name!r}"
            if not ph.name.isidentifier() or names.count(ph.name) > 1:
                raise SrnasError(f"{where}: phase names must be distinct identifiers ({', '.join(names)})")
            if ph.kind not in PHASE_KINDS:
                raise SrnasError(f"{where}: kind {ph.kind!r} is not one of {', '.join(PHASE_KINDS)}")
            for n in (*ph.inputs, *ph.derive_inputs):
                if not n.isidentifier():
                    raise SrnasError(f"{where}: input name {n!r} is not an identifier")
                if n in names and names.index(n) >= i:
                    raise SrnasError(f"{where} reads the output of phase {n!r}, which does not "
                                     f"come before it (phases: {', '.join(names)})")

    def _check_given(self, ph: Phase, given: Mapping[str, str], where: str, *, derive: bool = False) -> None:
        want = ph.derive_inputs if derive else ph.inputs
        if set(given) != set(want):
            raise SrnasError(f"{where}: phase {ph.name!r} takes inputs {', '.join(want) or '(none)'}, "
                             f"the run gives {', '.join(sorted(given)) or '(none)'}")

    def _check_split_parts(self, params: Params) -> None:
        key = f"{self.name}.split"
        spec = params.get(key)
        parts = {n for n in spec["parts"] if n != "unused"} | ({"valid"} if spec.get("valid_pool") else set())
        missing = [n for n in self.search_parts if n not in parts]
        if missing:
            raise SrnasError(f"params: {key}.parts has no {', '.join(missing)}: the {self.name} "
                             f"searches read the parts {', '.join(self.search_parts)}")

    def _check_order(self, stages: list[Stage], phase_of: Mapping[str, str],
                     inputs_of: Mapping[str, Mapping[str, str]]) -> None:
        """Every dep made by this recipe comes from the same or an earlier phase; a named
        input from an earlier phase, and the phase it is named after."""
        order = {ph.name: i for i, ph in enumerate(self.phases)}
        made = {o: s.name for s in stages if s.name in phase_of for o in s.outs}
        for s in stages:
            if s.name not in phase_of:
                continue
            mine = order[phase_of[s.name]]
            named = {path: n for n, path in inputs_of.get(s.name, {}).items()}
            for dep in s.deps:
                if dep not in made:
                    continue
                theirs = phase_of[made[dep]]
                if order[theirs] > mine or (dep in named and order[theirs] == mine):
                    raise SrnasError(f"{s.name} reads {dep}, an output of phase {theirs!r} "
                                     f"({made[dep]}), which does not come before its phase "
                                     f"{phase_of[s.name]!r}")
                if dep in named and named[dep] in order and named[dep] != theirs:
                    raise SrnasError(f"{s.name}: input {named[dep]!r} = {dep} is an output of phase "
                                     f"{theirs!r}, not of phase {named[dep]!r}")
            for n, path in inputs_of.get(s.name, {}).items():
                if n in order and path not in made:
                    raise SrnasError(f"{s.name}: input {n!r} = {path} is not an output of phase {n!r}")


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
    return PairedImages(files, lr_dir / "train" if lr_dir is not None else None, scale)


# The papers' recipes by name; each paper module registers its own (see srnas.catalog).
# Filled by the paper modules (and the matrix) that srnas.catalog loads.
PAPERS: Registry[Recipe] = Registry("paper", loader=catalog.load)
