"""Time MATLAB-exact bicubic downscaling: torch implementation vs the numpy reference.

    python benchmarks/bench_imresize.py --size 1024 --repeats 5 --device auto

The image is skimage's astronaut (512x512 RGB, shipped with scikit-image) tiled and cropped
to size x size, so every run sees the same pixels. Each implementation is run once to warm
up, then timed ``--repeats`` times; the table prints the best time as megapixels of *input*
per second. The torch rows time ``imresize_torch`` on a (3, H, W) uint8 tensor already on
the device (host-device copies excluded, the device synchronised). Every torch result must
equal the numpy reference bit for bit, or the script exits with status 1.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a plain checkout

from srnas.data.resize import imresize_numpy, imresize_torch  # noqa: E402


def make_image(size: int) -> np.ndarray:
    from skimage import data

    tile = data.astronaut()
    reps = -(-size // tile.shape[0])
    return np.ascontiguousarray(np.tile(tile, (reps, reps, 1))[:size, :size])


def pick_device(name: str) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise SystemExit("error: --device cuda but torch sees no CUDA device")
    return torch.device(name)


def best_time(fn, repeats: int, device: torch.device) -> tuple[float, object]:
    result = fn()  # warm-up: caches, CUDA context, allocator
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        result = fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - start)
    return min(times), result


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=1024, help="image side in pixels")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs (best is kept)")
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    parser.add_argument("--scales", type=int, nargs="+", default=[2, 3, 4],
                        help="integer downscale factors s (imresize(x, 1/s))")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads (default: torch's choice)")
    args = parser.parse_args(argv)
    if args.size < 1 or args.repeats < 1:
        parser.error("--size and --repeats must be positive")

    if args.threads is not None:
        torch.set_num_threads(args.threads)
    device = pick_device(args.device)
    devices = [torch.device("cpu")] + ([device] if device.type != "cpu" else [])
    img = make_image(args.size)
    megapixels = img.shape[0] * img.shape[1] / 1e6
    print(f"imresize benchmark: {img.shape[0]}x{img.shape[1]}x3 uint8 (astronaut tiled), "
          f"best of {args.repeats}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} CPU threads"
          + (f", {torch.cuda.get_device_name(device)}" if device.type == "cuda" else ""))
    header = f"{'scale':>5}  {'implementation':<14}  {'device':<6}  {'ms':>9}  {'MP/s':>9}  " \
             f"{'speed-up':>8}  agrees"
    print(header)
    print("-" * len(header))

    ok = True
    for s in args.scales:
        t_ref, ref = best_time(lambda s=s: imresize_numpy(img, 1 / s), args.repeats,
                               torch.device("cpu"))
        print(f"{'x' + str(s):>5}  {'numpy-ref':<14}  {'cpu':<6}  {t_ref * 1e3:9.1f}  "
              f"{megapixels / t_ref:9.1f}  {1.0:8.2f}  -")
        for dev in devices:
            chw = torch.from_numpy(img).permute(2, 0, 1).contiguous().to(dev)
            t, out = best_time(lambda chw=chw, s=s: imresize_torch(chw, 1 / s), args.repeats, dev)
            agrees = np.array_equal(out.permute(1, 2, 0).cpu().numpy(), ref)
            ok &= agrees
            print(f"{'x' + str(s):>5}  {'torch':<14}  {dev.type:<6}  {t * 1e3:9.1f}  "
                  f"{megapixels / t:9.1f}  {t_ref / t:8.2f}  {'yes' if agrees else 'NO'}")
    if not ok:
        print("error: torch and numpy results differ", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
