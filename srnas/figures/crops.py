"""SR crops: HR, Bicubic and every trained model of a paper side by side, per scale and set.

For the first :data:`CROP_IMAGES` images (by file name) of every benchmark set under
``data/benchmarks``, a centred square of :data:`CROP_LR` LR pixels (``CROP_LR * scale``
HR pixels; smaller when the image is) is shown in the HR image, in Bicubic's output and in
each model's. Inputs are those of the evaluate stages: the LR image of ``data/lr_benchmarks``
(checked against make_lr's manifest), Bicubic the RGB pipeline the models are fed
(:func:`srnas.evaluation.bicubic_rgb`), each model through the evaluate stage's upscaler
(``--model trained``, on the CPU). Titles give two PSNRs on Y: of the whole image under the
evaluation protocol (``scale`` pixels shaved, the number the evaluate JSON holds) and of the
crop shown (no shave). Pixels are drawn unsmoothed.

Denoisers (retrain jobs with a ``sigma``) get ``n<sigma>_<set>.png`` instead: the clean
image, the noisy input of the evaluate stage's noisy set (checked against its manifest) and
each denoiser's output on it, on the same centred crop; PSNRs on the grey image, whole
(as evaluated, no shave) and the crop.

torch and matplotlib are imported inside :func:`render_crops`.
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from srnas.params import Params
from srnas.recipe import BENCH, LR_BENCH

CROP_IMAGES = 2       # the first images, by file name, of every benchmark set
CROP_LR = 48          # side of the centred crop, in LR pixels
COLUMNS = 6           # panels per row of the figure
PANEL_IN = 2.1        # inches per panel


def trained_models(recipe: Any, params: Params) -> dict[int, list[tuple[str, str]]]:
    """{scale: [(label, model file)]} of the recipe's SR retrainings (denoisers, jobs with
    a ``sigma``, have no bicubic/HR crops to stand beside)."""
    out: dict[int, list[tuple[str, str]]] = {}
    for job in recipe.retrain_jobs(params):
        if getattr(job, "sigma", None) is not None:
            continue
        for s in job.scales:
            out.setdefault(s, []).append((job.label, recipe.model_file(job.run, s)))
    return dict(sorted(out.items()))


def denoisers(recipe: Any, params: Params) -> dict[float, list[tuple[str, str]]]:
    """{sigma: [(label, model file)]} of the recipe's denoising retrainings."""
    out: dict[float, list[tuple[str, str]]] = {}
    for job in recipe.retrain_jobs(params):
        if getattr(job, "sigma", None) is not None:
            out.setdefault(job.sigma, []).append((job.label, recipe.model_file(job.run, 1)))
    return dict(sorted(out.items()))


def crops_inputs(recipe: Any, params: Params) -> list[str]:
    models = [path for pairs in trained_models(recipe, params).values() for _, path in pairs]
    out = [BENCH, LR_BENCH, *models] if models else []
    noisy = [path for pairs in denoisers(recipe, params).values() for _, path in pairs]
    if noisy:
        _, _, bench, inputs = recipe.data_dirs(params)
        out += [bench, inputs, *noisy]
    return list(dict.fromkeys(out))


def crop_box(lr_shape: Sequence[int], size: int = CROP_LR) -> tuple[int, int, int]:
    """(top, left, side) of the centred square of ``size`` LR pixels (the image's shorter
    side when smaller)."""
    h, w = int(lr_shape[0]), int(lr_shape[1])
    side = min(size, h, w)
    return (h - side) // 2, (w - side) // 2, side


@dataclass(frozen=True)
class Panel:
    title: str
    image: np.ndarray        # uint8 HxWx3 crop (or the whole HR image for the overview)
    psnr_image: float | None = None
    psnr_crop: float | None = None


def image_panels(hr: np.ndarray, lr: np.ndarray, scale: int, models: Sequence[tuple[str, Any]],
                 size: int = CROP_LR) -> tuple[list[Panel], tuple[int, int, int]]:
    """The panels of one image: the HR image with the crop marked, the HR crop, Bicubic and
    each ``(label, upscaler)``; and the LR box (top, left, side)."""
    from srnas.evaluation import bicubic_rgb, grey_pair
    from srnas.metrics import psnr, score, to_y

    top, left, side = crop_box(lr.shape, size)
    t, l, n = top * scale, left * scale, side * scale

    def crop(img: np.ndarray) -> np.ndarray:
        c = img[t:t + n, l:l + n]
        return np.repeat(c[..., None], 3, axis=2) if c.ndim == 2 else c

    panels = [Panel("HR (crop marked)", np.repeat(hr[..., None], 3, axis=2) if hr.ndim == 2 else hr),
              Panel("HR", crop(hr))]
    for label, upscaler in [("Bicubic (RGB pipeline)", bicubic_rgb), *models]:
        sr = upscaler(lr, scale)
        ref = hr
        if hr.ndim == 2 and sr.ndim == 3:
            sr, ref = grey_pair(sr, hr)
        whole = score(sr, ref, scale)["psnr"]
        part = psnr(to_y(crop(sr)), to_y(crop(ref)))
        panels.append(Panel(label, crop(sr), whole, part))
    return panels, (top, left, side)


def render_crops(recipe: Any, params: Params, out: Path) -> list[Path]:
    """``x<scale>_<set>.png`` for every scale the recipe trains and every benchmark set."""
    import torch

    from srnas.data.images import read_image, set_images, set_names
    from srnas.data.resize import modcrop
    from srnas.evaluation import LRFolder
    from srnas.figures.plots import _rc
    from srnas.zoo import MODELS

    device = torch.device("cpu")
    sr_models = trained_models(recipe, params)
    lr_folder = LRFolder(LR_BENCH) if sr_models else None   # a denoising recipe reads no LR images
    written = []
    with _rc():
        for scale, pairs in sr_models.items():
            models = [(label, MODELS.get("trained").build(scale, Path(path), device)) for label, path in pairs]
            for set_name in set_names(BENCH):
                rows = []
                for path in set_images(BENCH, set_name)[:CROP_IMAGES]:
                    hr = modcrop(read_image(path, allow_grey=True), scale)
                    lr = lr_folder.read(set_name, scale, path.stem)
                    rows.append((path.stem, *image_panels(hr, lr, scale, models)))
                if rows:
                    written.append(_draw(recipe.name, set_name, scale, rows,
                                         out / f"x{scale}_{set_name}.png"))
        written += _render_denoising(recipe, params, out, device)
    return written


def _grey_rgb(img: np.ndarray) -> np.ndarray:
    return np.repeat(img[..., None], 3, axis=2) if img.ndim == 2 else img


def denoising_panels(clean: np.ndarray, noisy: np.ndarray, models: Sequence[tuple[str, Any]],
                     size: int = CROP_LR) -> tuple[list[Panel], tuple[int, int, int]]:
    """Clean (crop marked), the clean crop, the noisy input and each ``(label, denoise)``,
    ``denoise(noisy) -> uint8``; PSNR on the whole image (no shave) and on the crop."""
    from srnas.metrics import psnr

    top, left, side = crop_box(clean.shape, size)

    def crop(img):
        return img[top:top + side, left:left + side]

    panels = [Panel("Clean (crop marked)", _grey_rgb(clean)), Panel("Clean", _grey_rgb(crop(clean)))]
    from srnas.denoising import to_uint8

    for label, out in [("Noisy input", to_uint8(noisy)), *((lab, fn(noisy)) for lab, fn in models)]:
        whole = psnr(out.reshape(out.shape[0], -1), clean.reshape(clean.shape[0], -1))
        part = psnr(crop(out).reshape(side, -1), crop(clean).reshape(side, -1))
        panels.append(Panel(label, _grey_rgb(crop(out)), whole, part))
    return panels, (top, left, side)


def _render_denoising(recipe: Any, params: Params, out: Path, device) -> list[Path]:
    from srnas.data.images import set_names
    from srnas.denoising import noisy_set_dir, read_noisy_set, run_denoiser, to_uint8
    from srnas.modelfile import load_model

    def denoise_fn(model):
        return lambda noisy: to_uint8(run_denoiser(model, noisy, device))

    written = []
    groups = denoisers(recipe, params)
    if not groups:
        return written
    _, _, bench, inputs = recipe.data_dirs(params)
    for sigma, pairs in groups.items():
        models = [(label, denoise_fn(load_model(path, device)[0].eval())) for label, path in pairs]
        for set_name in set_names(bench):
            _, images = read_noisy_set(noisy_set_dir(inputs, set_name, sigma))
            rows = [(key, *denoising_panels(clean, noisy, models))
                    for key, (noisy, clean) in list(images.items())[:CROP_IMAGES]]
            if rows:
                written.append(_draw(recipe.name, set_name, 1, rows, out / f"n{sigma:g}_{set_name}.png",
                                     heading=f"{recipe.name}: denoising, sigma {sigma:g}, on {set_name}, centred "
                                           f"{rows[0][2][2]}-pixel crops\nPSNR (grey): whole image, as "
                                           f"evaluated, and the crop shown"))
    return written


def _draw(paper: str, set_name: str, scale: int, rows, path: Path, heading: str | None = None) -> Path:
    from matplotlib.patches import Rectangle

    from srnas.figures.plots import FONT, new_figure, save_png

    per_image = math.ceil(len(rows[0][1]) / COLUMNS)
    cols = min(COLUMNS, len(rows[0][1]))
    fig = new_figure(PANEL_IN * cols, 0.9 + (PANEL_IN + 0.45) * per_image * len(rows))
    grid = fig.subplots(per_image * len(rows), cols, squeeze=False)
    for r, (stem, panels, (top, left, side)) in enumerate(rows):
        axes = grid[r * per_image:(r + 1) * per_image].ravel()
        for ax, panel in zip(axes, panels):
            ax.imshow(panel.image, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            title = "\n".join(textwrap.wrap(panel.title, 29)[:2])
            if panel.psnr_image is not None:
                title += f"\n{panel.psnr_image:.2f} dB image, {panel.psnr_crop:.2f} dB crop"
            elif panel is panels[0]:
                title = f"{stem}: {title}"
            ax.set_title(title, fontsize=FONT - 1)
        overview = axes[0]
        overview.add_patch(Rectangle((left * scale - 0.5, top * scale - 0.5), side * scale, side * scale,
                                     fill=False, edgecolor="#ff2020", lw=1.5))
        for ax in axes[len(panels):]:
            ax.set_axis_off()
    side = rows[0][2][2]
    fig.suptitle(heading or f"{paper}: x{scale} on {set_name}, centred {side}x{side} LR-pixel crops "
                 f"({side * scale}x{side * scale} HR pixels)\nPSNR on Y: whole image (shave {scale}, as "
                 f"evaluated) and the crop shown", fontsize=FONT + 1)
    return save_png(fig, path)
