"""Weights released by the papers' authors: where they live, their hashes, how to load them.

``WEIGHTS`` lists each released file (public raw-GitHub URL at a pinned commit, sha256,
size, which model / variant / scale it is); the values come from the project's weights
README (``../shared/weights/README.md``) and FACTS.md §2 and §6. :func:`fetch` downloads one
(resumable, hash-checked, atomic) or verifies a local copy; :func:`identify` names the
entry a file is by its hash (every load checks it); :func:`load_released_dlsr`
maps the DLSR authors' checkpoint keys (``DawnHH/DLSR-PyTorch``) onto
:class:`srnas.spaces.dlsr.DLSRNet`, strictly; :func:`load_released_tpsr` maps the TPSR
authors' x4 generators (``royson/tpsr``) onto :class:`srnas.spaces.tpsr.TPSRNet`, strictly.

Files are laid out as ``<dest_dir>/<paper>/<file name>``, the layout of the shared
weights folder, so ``fetch(name, "../shared/weights")`` finds a present copy.
TPSR's released weights are x4 only (FACTS.md §6); DLSR's are x2 only (§2).
"""

from __future__ import annotations

import logging
import os
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from srnas.data.images import sha256_file
from srnas.errors import SrnasError
from srnas.io import atomic_path
from srnas.registry import Registry

log = logging.getLogger("srnas.weights")

DLSR_REPO, DLSR_COMMIT = "DawnHH/DLSR-PyTorch", "3ea0d846f04895fb260ba419c94d6582bc7d7f0b"
TPSR_REPO, TPSR_COMMIT = "royson/tpsr", "76440813e988d02b1274907139b3319d4c3d2008"


@dataclass(frozen=True)
class ReleasedWeights:
    name: str
    paper: str         # srnas paper name; also the sub-folder under dest_dir
    variant: str       # model variant (for DLSR: a key of srnas.spaces.dlsr.VARIANTS)
    scale: int
    filename: str
    url: str
    sha256: str
    size: int          # bytes
    description: str

    @property
    def relpath(self) -> Path:
        return Path(self.paper) / self.filename


WEIGHTS: Registry[ReleasedWeights] = Registry("released weights")


def _add(name, paper, variant, scale, repo, commit, folder, filename, sha256, size, description):
    url = f"https://raw.githubusercontent.com/{repo}/{commit}/{folder}/{filename}"
    WEIGHTS.register(name)(ReleasedWeights(name, paper, variant, scale, filename, url,
                                           sha256, size, description))


_add("dlsr-x2", "dlsr", "dlsr", 2, DLSR_REPO, DLSR_COMMIT, "checkpoints",
     "RFDN_beta21_ps128_20210128_1000.pt",
     "d2d9253e8ab69ad3d681244b8673353538d2ed5a024c9a5a273cecb8b7a00ecb", 3983137,
     "DLSR x2, the paper model (Table 2); dict with epoch, state_dict, optimizer")
_add("dlsr-s-x2", "dlsr", "dlsr-s", 2, DLSR_REPO, DLSR_COMMIT, "checkpoints",
     "RFDN_beta21_tiny18_ps128_20210306_lr4_700.pt",
     "d08440aea6686aef995b08118c87801df1e231f66ffb97209f1d4e43ebdbdcd1", 786721,
     "DLSR-S x2 (nf = 18, Table 3)")
_add("dlsr-para-loss-x2", "dlsr", "dlsr-para-loss", 2, DLSR_REPO, DLSR_COMMIT, "checkpoints",
     "RFDN_beta1_para_loss.pt",
     "5966582411f3dd016ff9bdd6012cfdf60aea45519e50d62c0f4fa4c6bca8deb8", 4055569,
     "a further DLSR x2 search result (sep_conv_3x3, sep_conv_5x5, sep_conv_5x5; FACTS.md §2)")
_add("tpsr-nogan-x4", "tpsr", "tpsr-nogan", 4, TPSR_REPO, TPSR_COMMIT, "pretrained",
     "TPSR_NOGANX4.pt",
     "2951ceca75f792056cdbac1159ee8d927d2bd353c4fd7e674290cfd368327ab7", 256415,
     "TPSR-NOGAN x4, distortion-only generator (plain state_dict)")
_add("tpsr-d2-x4", "tpsr", "tpsr-d2", 4, TPSR_REPO, TPSR_COMMIT, "pretrained",
     "TPSR_D2X4.pt",
     "bf86676b483cad500369cbc112a02149e68bc4e275fbd6fb3de8fd1a2af23bfc", 256459,
     "TPSR-D2 x4, trained with the searched discriminator")
_add("tpsr-esrgan-x4", "tpsr", "tpsr-esrgan", 4, TPSR_REPO, TPSR_COMMIT, "pretrained",
     "TPSR_ESRGANX4.pt",
     "bcf2a9cfa886585e062995644f7da06f519a53c8aeb0b6b47d5f6a45bbb5dbc1", 256487,
     "TPSR x4, trained with the ESRGAN discriminator")


# ----------------------------------------------------------------------------------------
# Download / verify
# ----------------------------------------------------------------------------------------

def verify(path: str | os.PathLike, entry: ReleasedWeights | str) -> Path:
    """Check ``path`` against the table's sha256; SrnasError naming the file and both hashes."""
    entry = _entry(entry)
    path = Path(path)
    if not path.is_file():
        raise SrnasError(f"{path}: weights file not found ({entry.name})")
    actual = sha256_file(path)
    if actual != entry.sha256:
        raise SrnasError(f"{path}: sha256 mismatch for {entry.name}: expected {entry.sha256}, "
                         f"got {actual}")
    return path


def identify(path: str | os.PathLike) -> ReleasedWeights | None:
    """The table entry whose sha256 the file at ``path`` has, or None (with a warning) when
    the hash is unknown. A file that carries a released file's name but not its hash is an
    error: it is a damaged or altered copy, and scoring it would print the wrong numbers
    under the authors' name."""
    path = Path(path)
    actual = sha256_file(path)
    entries = [WEIGHTS.get(n) for n in WEIGHTS]
    for entry in entries:
        if entry.sha256 == actual:
            return entry
    for entry in entries:
        if entry.filename == path.name:
            raise SrnasError(f"{path}: sha256 mismatch for {entry.name}: expected {entry.sha256}, "
                             f"got {actual}; the file is damaged or altered: fetch it again "
                             f"(pipeline.fetch_weights)")
    log.warning("%s: sha256 %s is not that of any released file srnas knows (%s); loading it "
                "anyway, but its scores are not the authors' weights'", path, actual,
                ", ".join(WEIGHTS))
    return None


def fetch(name: ReleasedWeights | str, dest_dir: str | os.PathLike,
          local_path: str | os.PathLike | None = None, *, progress: bool = True,
          timeout: float = 60.0, retries: int = 5) -> Path:
    """Return ``<dest_dir>/<paper>/<file>`` holding the verified released weights ``name``.

    - ``local_path``: verify that file's sha256 and copy it into place (atomically);
    - otherwise :func:`srnas.data.download.download`: a verified file already in place is
      returned as is; else urllib downloads into ``<file>.part``, resuming a previous
      partial download with an HTTP Range request (tqdm progress bar), checks the sha256
      and renames into place. A mismatch removes the bad bytes and raises SrnasError naming
      the file and both hashes: nothing unverified ever sits under the final name.
    """
    from srnas.data.download import download

    entry = _entry(name)
    dest = Path(dest_dir) / entry.relpath
    if local_path is not None:
        src = verify(local_path, entry)
        if dest.is_file() and sha256_file(dest) == entry.sha256:
            return dest
        with atomic_path(dest) as tmp:
            shutil.copyfile(src, tmp)
        return dest
    return download(entry.url, dest, entry.sha256, progress=progress, timeout=timeout,
                    retries=retries).path


def _entry(name: ReleasedWeights | str) -> ReleasedWeights:
    return name if isinstance(name, ReleasedWeights) else WEIGHTS.get(name)


# ----------------------------------------------------------------------------------------
# DLSR checkpoints -> DLSRNet
# ----------------------------------------------------------------------------------------
# The released models (models/rfdn_6_train_beta21*.py, models/beta1_para_loss.py) name
# their modules fea_conv, B1..B6 (c{j}_d distillation, c{j}_r.op searched op, c4, c5, esa),
# c3..c6 (network links, Sequential(conv, act)), cout (Sequential(conv, act)), LR_conv and
# upsampler (Sequential(conv, PixelShuffle)). The searched ops wrap their layers in ``.op``:
# a plain conv is op.0; sep/dil convs are op.<i> with the same Sequential indices as ours
# (ReLUs sit at the parameter-free positions 0 and 3). Our cell index k is their B{k+1}.

_ESA_NAMES = {"reduce": "conv1", "down": "conv2", "range_conv": "conv_max",
              "conv_a": "conv3", "conv_b": "conv3_", "skip": "conv_f", "expand": "conv4"}
_P = r"(weight|bias)"
_DLSR_RULES: list[tuple[re.Pattern, Callable[[re.Match], str]]] = [
    (re.compile(rf"head\.{_P}"), lambda m: f"fea_conv.{m[1]}"),
    (re.compile(rf"cells\.(\d+)\.distill\.(\d+)\.{_P}"),
     lambda m: f"B{int(m[1]) + 1}.c{int(m[2]) + 1}_d.{m[3]}"),
    (re.compile(r"cells\.(\d+)\.ops\.(\d+)\.weight"),                 # plain conv op
     lambda m: f"B{int(m[1]) + 1}.c{int(m[2]) + 1}_r.op.0.weight"),
    (re.compile(r"cells\.(\d+)\.ops\.(\d+)\.(\d+)\.weight"),          # sep / dil conv op
     lambda m: f"B{int(m[1]) + 1}.c{int(m[2]) + 1}_r.op.{m[3]}.weight"),
    (re.compile(rf"cells\.(\d+)\.r4\.{_P}"), lambda m: f"B{int(m[1]) + 1}.c4.{m[2]}"),
    (re.compile(rf"cells\.(\d+)\.fuse\.{_P}"), lambda m: f"B{int(m[1]) + 1}.c5.{m[2]}"),
    (re.compile(rf"cells\.(\d+)\.esa\.({'|'.join(_ESA_NAMES)})\.{_P}"),
     lambda m: f"B{int(m[1]) + 1}.esa.{_ESA_NAMES[m[2]]}.{m[3]}"),
    (re.compile(rf"links\.(\d+)\.{_P}"), lambda m: f"c{m[1]}.0.{m[2]}"),
    (re.compile(rf"aggregate\.{_P}"), lambda m: f"cout.0.{m[1]}"),
    (re.compile(rf"tail\.{_P}"), lambda m: f"LR_conv.{m[1]}"),
    (re.compile(rf"upsampler\.0\.{_P}"), lambda m: f"upsampler.0.{m[1]}"),
]


def dlsr_key_map(our_keys) -> dict[str, str | None]:
    """Our DLSRNet state_dict key -> the released checkpoint's key (None: no rule)."""
    mapping: dict[str, str | None] = {}
    for key in our_keys:
        mapping[key] = None
        for pattern, their in _DLSR_RULES:
            m = pattern.fullmatch(key)
            if m:
                mapping[key] = their(m)
                break
    return mapping


def _short_list(keys) -> str:
    keys = sorted(keys)
    return ", ".join(keys[:20]) + (f", ... ({len(keys)} in all)" if len(keys) > 20 else "")


def mapping_problems(mapping: dict[str, str | None], state: dict, ours: dict,
                     checked_apart: set[str] = frozenset()) -> list[str]:
    """What keeps ``state`` (a released checkpoint) from filling ``ours`` (our state dict)
    through ``mapping`` (our key -> checkpoint key, None where no rule applies) strictly:
    keys without a rule, absent or doubly used checkpoint keys, checkpoint keys left over
    (but ``checked_apart``, which the caller checks itself) and shape mismatches."""
    targets = [v for v in mapping.values() if v is not None]
    checks = {
        "our keys without a mapping rule": [k for k, v in mapping.items() if v is None],
        "our keys whose checkpoint key is absent": [f"{k} (<- {v})" for k, v in mapping.items()
                                                    if v is not None and v not in state],
        "checkpoint keys mapped twice": sorted({v for v in targets if targets.count(v) > 1}),
        "checkpoint keys not used": [k for k in state if k not in set(targets) | set(checked_apart)],
        "shape mismatches": [f"{k} {tuple(ours[k].shape)} <- {v} {tuple(state[v].shape)}"
                             for k, v in mapping.items() if v in state and ours[k].shape != state[v].shape],
    }
    return [f"{what}: {_short_list(keys)}" for what, keys in checks.items() if keys]


def load_released_dlsr(path: str | os.PathLike, variant: str = "dlsr", scale: int = 2):
    """Build the DLSR ``variant`` ("dlsr", "dlsr-s", "dlsr-para-loss") and load the
    authors' x2 checkpoint into it, strictly: every key on both sides accounted for and every
    shape equal, else SrnasError listing what did not match. Returns the model in eval mode.
    The file's sha256 is checked against the table (:func:`identify`: a known file name with
    another hash is an error, an unknown hash a warning) and every weight must be finite.

    ``scale`` 3 or 4 builds that model and loads everything but the upsampler (left at its
    initialisation): the paper's warm start of x3/x4 from x2 (DLSR appendix A).
    """
    import torch

    from srnas.checkpoint import check_finite_tensors
    from srnas.spaces.dlsr import VARIANTS, build_variant

    if variant not in VARIANTS:
        raise SrnasError(f"unknown DLSR variant {variant!r}; known: {', '.join(VARIANTS)}")
    path = Path(path)
    if not path.is_file():
        raise SrnasError(f"{path}: checkpoint not found")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # unpickling errors come in many types
        raise SrnasError(f"{path}: not a loadable PyTorch checkpoint ({exc})") from None
    state = ckpt.get("state_dict", ckpt) if isinstance(ckpt, dict) else None
    if not isinstance(state, dict) or not all(torch.is_tensor(v) for v in state.values()):
        raise SrnasError(f"{path}: no state_dict of tensors found")
    identify(path)
    check_finite_tensors(state, f"{path}: state_dict", "weights")

    model = build_variant(variant, scale=scale)
    ours = model.state_dict()
    mapping = dlsr_key_map(ours)
    if scale != 2:  # the released upsampler is x2-only (3*2*2 output channels)
        mapping = {k: v for k, v in mapping.items() if not k.startswith("upsampler.")}
        state = {k: v for k, v in state.items() if not k.startswith("upsampler.")}
    problems = mapping_problems(mapping, state, ours)
    if problems:
        raise SrnasError(f"{path}: does not match DLSR variant {variant!r}: " + "; ".join(problems))
    model.load_state_dict({k: state[v] for k, v in mapping.items()}, strict=(scale == 2))
    return model.eval()


# ----------------------------------------------------------------------------------------
# TPSR generators -> TPSRNet
# ----------------------------------------------------------------------------------------
# The released x4 files (pretrained/TPSR_*X4.pt) are plain state_dicts with identical keys
# (45 tensors, 61,121 values; FACTS.md §6). The authors' model names its modules
# first_layer (our head), <group>.Node_<m>_Operation_0_type_<Conv2d|Sep2d>_<k>x<k>.model.<i>
# (node m: the op's layers, then its PReLU as the last index; the groups are the four
# branches of their hand-written cell), merge_op_act (the PReLU after the leaf sum),
# up_mod.<j>.extend (the upsampler convs) and sub_mean / add_mean (frozen 1x1 convs with
# identity weights and bias -/+ 255 x the DIV2K mean). The mean shifts are checked against
# ours (a subtraction without Multi-Adds), not loaded.

TPSR_RELEASED = {"tpsr-nogan": "tpsr-nogan-x4", "tpsr-d2": "tpsr-d2-x4", "tpsr-esrgan": "tpsr-esrgan-x4"}
_TPSR_GROUPS = {0: "early_layers", 1: "early_layers", 2: "early_layers", 4: "middle_main_layers",
                5: "middle_main_layers", 6: "middle_main_layers", 3: "middle_side_layers",
                7: "middle_side_layers", 8: "middle_side_layers", 9: "skip_layer"}
_TPSR_TYPES = {"conv": "Conv2d", "dsep": "Sep2d"}   # srnas op kind -> released type name
_TPSR_LAYERS = {"conv": 1, "dsep": 3}               # layers of the op before the node's PReLU


def tpsr_key_map(model) -> dict[str, str | None]:
    """Our TPSRNet (the published genotype) state_dict key -> the released key (None: no
    rule, e.g. an op the released network does not have)."""
    ours = list(model.state_dict())
    nodes = model.genotype.payload["nodes"]
    mapping: dict[str, str | None] = {k: None for k in ours}
    for key in ours:
        if m := re.fullmatch(rf"head\.{_P}", key):
            mapping[key] = f"first_layer.{m[1]}"
        elif key == "out_act.weight":
            mapping[key] = "merge_op_act.weight"
        elif m := re.fullmatch(rf"upsampler\.(\d+)\.0\.{_P}", key):
            mapping[key] = f"up_mod.{m[1]}.extend.{m[2]}"
        elif m := re.fullmatch(rf"nodes\.(\d+)\.(op|op\.\d+|act)\.{_P}", key):
            node = int(m[1])
            kind, _, size = nodes[node][1].partition("_")
            if kind not in _TPSR_TYPES or node not in _TPSR_GROUPS:
                continue
            prefix = f"{_TPSR_GROUPS[node]}.Node_{node}_Operation_0_type_{_TPSR_TYPES[kind]}_{size}.model"
            part = m[2]
            index = _TPSR_LAYERS[kind] if part == "act" else (0 if part == "op" else int(part[3:]))
            mapping[key] = f"{prefix}.{index}.{m[3]}"
    return mapping


def _check_tpsr_mean_shift(state: dict, model) -> list[str]:
    """Problems with the released frozen MeanShift convs against our mean shifts."""
    import torch

    problems = []
    for name in ("sub_mean", "add_mean"):
        weight, bias = state.get(f"{name}.weight"), state.get(f"{name}.bias")
        ours = getattr(model, name).mean.flatten()
        if weight is None or bias is None:
            problems.append(f"{name}.weight / {name}.bias (the frozen mean shift) absent")
        elif weight.shape != (3, 3, 1, 1) or bias.shape != (3,):
            problems.append(f"{name}: shapes {tuple(weight.shape)}, {tuple(bias.shape)}, expected (3, 3, 1, 1), (3,)")
        elif not torch.equal(weight.flatten(1), torch.eye(3)) or not torch.allclose(bias, ours, atol=1e-3):
            problems.append(f"{name}: not an identity 1x1 conv with bias {[round(v, 4) for v in ours.tolist()]} "
                            f"(255 x the DIV2K mean), got bias {[round(v, 4) for v in bias.tolist()]}")
    return problems


def load_released_tpsr(path: str | os.PathLike, variant: str = "tpsr-nogan"):
    """Build the published TPSR generator at x4 and load the authors' released ``variant``
    ("tpsr-nogan", "tpsr-d2", "tpsr-esrgan") into it, strictly: every released key used
    exactly once (the two mean shifts checked against ours), every parameter filled, every
    shape equal, every weight finite, else SrnasError listing what did not match. The
    sha256 is checked first (:func:`identify`: a known file name with another hash is an
    error, an unknown hash a warning); a known file of another variant is an error, so one
    model is never scored under another's name. Returns the model in eval mode."""
    import torch

    from srnas.checkpoint import check_finite_tensors
    from srnas.spaces.tpsr import build_published

    if variant not in TPSR_RELEASED:
        raise SrnasError(f"unknown released TPSR variant {variant!r}; known: {', '.join(TPSR_RELEASED)}")
    path = Path(path)
    if not path.is_file():
        raise SrnasError(f"{path}: checkpoint not found")
    entry = identify(path)
    if entry is not None and entry.name != TPSR_RELEASED[variant]:
        raise SrnasError(f"{path}: is the released {entry.name} ({entry.filename}), not {TPSR_RELEASED[variant]}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # unpickling errors come in many types
        raise SrnasError(f"{path}: not a loadable PyTorch checkpoint ({exc})") from None
    if not isinstance(state, dict) or not all(torch.is_tensor(v) for v in state.values()):
        raise SrnasError(f"{path}: not a state_dict of tensors (the released TPSR files are plain state_dicts)")
    check_finite_tensors(state, f"{path}: state_dict", "weights")

    model = build_published(scale=4)
    ours = model.state_dict()
    mapping = tpsr_key_map(model)
    frozen = {f"{n}.{p}" for n in ("sub_mean", "add_mean") for p in ("weight", "bias")}
    problems = mapping_problems(mapping, state, ours, checked_apart=frozen) + _check_tpsr_mean_shift(state, model)
    if problems:
        raise SrnasError(f"{path}: does not match the released TPSR generator ({variant}): " + "; ".join(problems))
    model.load_state_dict({k: state[v] for k, v in mapping.items()}, strict=True)
    return model.eval()
