"""Data stages: image validation, downloads, sources, splits, LR generation (CPU, small)."""

from __future__ import annotations

import dataclasses
import hashlib
import http.server
import io
import json
import os
import struct
import subprocess
import sys
import tarfile
import threading
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from pipeline import make_lr as make_lr_stage  # noqa: E402
from pipeline import prepare_benchmarks, prepare_data  # noqa: E402
from srnas.data.download import download  # noqa: E402
from srnas.data.images import list_images, read_image, sha256_file, write_png  # noqa: E402
from srnas.data.resize import downscale, modcrop  # noqa: E402
from srnas.data.sources import Archive  # noqa: E402
from srnas.data.splits import SPLIT_SCHEMA_DOC, make_split, validate_split  # noqa: E402
from srnas.errors import SrnasError  # noqa: E402
from srnas.params import load_params  # noqa: E402

ENV = {**os.environ, "SRNAS_MLFLOW": "0", "PYTHONPATH": str(ROOT)}


@pytest.fixture(autouse=True)
def _no_mlflow(monkeypatch):
    monkeypatch.setenv("SRNAS_MLFLOW", "0")


def rgb(h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def save(path: Path, array: np.ndarray, **kw) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path, **kw)
    return path


def params_for(keys, *overrides):
    return load_params(None, list(overrides)).restrict(keys)


def png_rgb16(path: Path, h: int = 6, w: int = 7) -> Path:
    """A 16-bit RGB PNG (Pillow would silently read it as 8-bit RGB)."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    rows = b"".join(b"\0" + (np.arange(w * 3, dtype=">u2") * 999).tobytes() for _ in range(h))
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))
    return path


# ------------------------------------------------------------------------------ bad images

def make_bad(kind: str, folder: Path) -> Path:
    a = rgb(40, 50)
    if kind == "truncated":
        data = io.BytesIO()
        Image.fromarray(a).save(data, format="PNG")
        path = folder / "truncated.png"
        path.write_bytes(data.getvalue()[: len(data.getvalue()) // 2])
        return path
    if kind == "no_iend":  # pixel data complete, end of file missing
        data = io.BytesIO()
        Image.fromarray(a).save(data, format="PNG")
        path = folder / "no_iend.png"
        path.write_bytes(data.getvalue()[:-12])
        return path
    if kind == "grey16":
        return save(folder / "grey16.png", (np.arange(2000).reshape(40, 50) * 30).astype(np.uint16))
    if kind == "rgb16":
        return png_rgb16(folder / "rgb16.png")
    if kind == "float":
        return save(folder / "float.tif", np.zeros((40, 50), np.float32))
    if kind == "rgba":
        alpha = np.full((40, 50, 1), 255, np.uint8)
        alpha[3, 4] = 128
        return save(folder / "rgba.png", np.concatenate([a, alpha], axis=2))
    if kind == "palette_transparent":
        return _palette_transparent(folder / "ptrans.png", a)
    if kind == "grey":
        return save(folder / "grey.png", a[:, :, 0])
    if kind == "cmyk":
        path = folder / "cmyk.jpg"
        Image.fromarray(a).convert("CMYK").save(path)
        return path
    if kind == "small":
        return save(folder / "small.png", rgb(40, 7))
    if kind == "not_image":
        path = folder / "notes.png"
        path.write_text("this is not an image\n")
        return path
    raise ValueError(kind)


def _palette_transparent(path: Path, a: np.ndarray) -> Path:
    img = Image.fromarray(a).convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    img.save(path, transparency=int(np.asarray(img)[0, 0]))
    return path


BAD = {
    "truncated": "truncated",
    "no_iend": "truncated",
    "grey16": "16-bit",
    "rgb16": "16-bit",
    "float": "floating-point",
    "rgba": "transparency",
    "palette_transparent": "transparency",
    "grey": "greyscale",
    "cmyk": "CMYK",
    "small": "smaller than the minimum of 8",
    "not_image": "not a readable image",
}


@pytest.mark.parametrize("kind", sorted(BAD))
def test_bad_image_names_file_and_problem(tmp_path, kind):
    path = make_bad(kind, tmp_path)
    with pytest.raises(SrnasError) as err:
        read_image(path, min_size=8)
    assert str(path) in str(err.value)
    assert BAD[kind] in str(err.value)


def test_missing_file_and_folder(tmp_path):
    with pytest.raises(SrnasError, match="nothere.png: file not found"):
        read_image(tmp_path / "nothere.png")
    with pytest.raises(SrnasError, match="not an image file"):
        read_image(tmp_path)


def test_good_images(tmp_path):
    a = rgb(20, 30)
    assert np.array_equal(read_image(save(tmp_path / "a.png", a)), a)
    opaque = np.concatenate([a, np.full((20, 30, 1), 255, np.uint8)], axis=2)
    assert np.array_equal(read_image(save(tmp_path / "o.png", opaque)), a)  # opaque alpha dropped
    assert np.array_equal(read_image(save(tmp_path / "t.tif", a)), a)
    assert np.array_equal(read_image(save(tmp_path / "b.bmp", a)), a)
    pal = Image.fromarray(a).convert("P", palette=Image.Palette.ADAPTIVE, colors=8)
    pal.save(tmp_path / "p.png")
    out = read_image(tmp_path / "p.png")
    assert out.shape == (20, 30, 3) and np.array_equal(out, np.asarray(pal.convert("RGB")))
    grey = read_image(save(tmp_path / "g.png", a[:, :, 1]), allow_grey=True)
    assert grey.shape == (20, 30) and np.array_equal(grey, a[:, :, 1])


def test_write_png_and_list_images(tmp_path):
    a = rgb(9, 11)
    write_png(tmp_path / "x" / "b.png", a)
    write_png(tmp_path / "x" / "a.png", a[:, :, 0])
    (tmp_path / "x" / "readme.txt").write_text("no")
    assert [p.name for p in list_images(tmp_path / "x")] == ["a.png", "b.png"]
    assert np.array_equal(read_image(tmp_path / "x" / "b.png"), a)
    assert not list(tmp_path.glob("x/.*"))  # no temporary files left
    data = (tmp_path / "x" / "b.png").read_bytes()
    assert sha256_file(tmp_path / "x" / "b.png") == hashlib.sha256(data).hexdigest()
    with pytest.raises(SrnasError, match="nope"):
        list_images(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(SrnasError, match="empty.*holds no images"):
        list_images(tmp_path / "empty")


# ------------------------------------------------------------------------------ stage CLIs

def run_stage(module: str, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", module, "--no-progress", *args], cwd=cwd, env=ENV,
                          capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("kind", ["truncated", "grey"])
def test_prepare_data_cli_bad_input_leaves_nothing(tmp_path, kind):
    folder = tmp_path / "hr_in"
    save(folder / "a_good.png", rgb(16, 16))
    bad = make_bad(kind, folder)
    out = tmp_path / "data" / "hr"
    proc = run_stage("pipeline.prepare_data", "--out", str(out), "--set", "data.source=local",
                     "--set", f"data.local.train_hr={folder}", "--set", "data.min_size=8", cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith("error: ") and bad.name in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not out.exists() and not list(out.parent.glob(".hr*"))


@pytest.mark.parametrize("kind", ["no_iend", "rgb16", "rgba", "cmyk", "small", "not_image"])
def test_prepare_data_bad_input_leaves_nothing(tmp_path, kind):
    folder = tmp_path / "hr_in"
    save(folder / "a_good.png", rgb(16, 16))
    bad = make_bad(kind, folder)
    out = tmp_path / "hr"
    params = params_for(prepare_data.KEYS, "data.source=local", f"data.local.train_hr={folder}",
                        "data.min_size=8")
    with pytest.raises(SrnasError, match=bad.name):
        prepare_data.prepare(params, out, progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hr_in"]


SAMPLE = ("data.sample.train=[rocket, immunohistochemistry]", "data.sample.test=[chelsea]")


def test_sample_source_deterministic(tmp_path):
    out1, out2 = tmp_path / "one" / "hr", tmp_path / "two" / "hr"
    proc = run_stage("pipeline.prepare_data", "--out", str(out1), "--set", SAMPLE[0],
                     "--set", SAMPLE[1], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    prepare_data.prepare(params_for(prepare_data.KEYS, *SAMPLE), out2, progress=False)
    names = sorted(p.name for p in (out1 / "train").iterdir())
    assert names == ["sample_immunohistochemistry.png", "sample_rocket.png"]
    assert not (out1 / "valid").exists()
    m1 = json.loads((out1 / "manifest.json").read_text())
    assert (out1 / "manifest.json").read_bytes() == (out2 / "manifest.json").read_bytes()
    assert m1["source"] == "sample" and m1["counts"] == {"train": 2, "valid": 0}
    assert "scikit-image sample photographs" in m1["note"]
    for rel, entry in m1["files"].items():
        assert entry["sha256"] == sha256_file(out1 / rel) == sha256_file(out2 / rel)
    import skimage.data

    assert np.array_equal(read_image(out1 / "train" / "sample_rocket.png"), skimage.data.rocket())
    # a second run replaces the folder in place
    prepare_data.prepare(params_for(prepare_data.KEYS, "data.sample.train=[rocket]"), out2, progress=False)
    assert sorted(p.name for p in (out2 / "train").iterdir()) == ["sample_rocket.png"]
    assert sorted(p.name for p in out2.parent.iterdir()) == ["hr"]


def test_sample_source_bad_names(tmp_path):
    with pytest.raises(SrnasError,
                       match="data.sample.train: unknown sample image 'lena'; available: .*rocket"):
        prepare_data.prepare(params_for(prepare_data.KEYS, "data.sample.train=[lena]"), tmp_path / "o")
    with pytest.raises(SrnasError, match="both list 'chelsea'"):
        prepare_data.prepare(params_for(prepare_data.KEYS, "data.sample.train=[chelsea]"), tmp_path / "o")
    assert not (tmp_path / "o").exists()


def test_local_source(tmp_path):
    save(tmp_path / "tr" / "b.png", rgb(12, 14, 1))
    save(tmp_path / "tr" / "a.jpg", rgb(12, 14, 2), quality=95)
    save(tmp_path / "va" / "z.png", rgb(10, 10, 3))
    params = params_for(prepare_data.KEYS, "data.source=local", f"data.local.train_hr={tmp_path / 'tr'}",
                        f"data.local.valid_hr={tmp_path / 'va'}", "data.min_size=10")
    manifest, metrics = prepare_data.prepare(params, tmp_path / "hr", progress=False)
    assert sorted(manifest["files"]) == ["train/local_a.png", "train/local_b.png", "valid/localvalid_z.png"]
    assert metrics["n_train"] == 2 and metrics["n_valid"] == 1
    assert np.array_equal(read_image(tmp_path / "hr" / "train" / "local_b.png"), rgb(12, 14, 1))
    missing = params_for(prepare_data.KEYS, "data.source=local", f"data.local.train_hr={tmp_path / 'nope'}")
    with pytest.raises(SrnasError, match="data.local.train_hr = .*nope.*folder not found"):
        prepare_data.prepare(missing, tmp_path / "hr2")
    with pytest.raises(SrnasError, match="data.local.train_hr is not set"):
        prepare_data.prepare(params_for(prepare_data.KEYS, "data.source=local"), tmp_path / "hr2")
    save(tmp_path / "tr" / "b.bmp", rgb(12, 14, 1))
    with pytest.raises(SrnasError, match="b.png: same name as b.bmp"):
        prepare_data.prepare(params, tmp_path / "hr2")


# ------------------------------------------------------------------------------ downloads

def test_download_file_url_resume_and_hash(tmp_path):
    payload = np.random.default_rng(5).bytes(3_000_000)
    src = tmp_path / "src.bin"
    src.write_bytes(payload)
    url = src.as_uri()
    good = hashlib.sha256(payload).hexdigest()
    # resume: the .part keeps its bytes (here deliberately different ones) and only the rest
    # is fetched, which the hash check then catches
    dest = tmp_path / "dl" / "file.bin"
    dest.parent.mkdir()
    (tmp_path / "dl" / "file.bin.part").write_bytes(b"x" * 1000)
    with pytest.raises(SrnasError) as err:
        download(url, dest, good, progress=False)
    wrong = hashlib.sha256(b"x" * 1000 + payload[1000:]).hexdigest()
    assert str(dest) in str(err.value) and good in str(err.value) and wrong in str(err.value)
    assert not dest.exists() and not (tmp_path / "dl" / "file.bin.part").exists()
    # an honest partial file resumes to the right result
    (tmp_path / "dl" / "file.bin.part").write_bytes(payload[:1_234_567])
    got = download(url, dest, good, progress=False)
    assert got.sha256 == good and dest.read_bytes() == payload
    assert not (tmp_path / "dl" / "file.bin.part").exists()
    # an existing file is verified, not fetched again
    src.unlink()
    assert download(url, dest, good, progress=False).sha256 == good
    with pytest.raises(SrnasError, match="sha256 mismatch"):
        download(url, dest, "0" * 64, progress=False)
    assert not dest.exists()
    with pytest.raises(SrnasError, match="file not found"):
        download(url, dest, progress=False)


class _RangeHandler(http.server.BaseHTTPRequestHandler):
    payload = b""
    fail_first = 0
    honour_range = True
    requests: list = []

    def do_GET(self):  # noqa: N802
        cls = type(self)
        cls.requests.append(self.headers.get("Range"))
        if cls.fail_first:
            cls.fail_first -= 1
            self.send_error(503)
            return
        start = 0
        rng = self.headers.get("Range")
        if rng and cls.honour_range:
            start = int(rng.split("=")[1].split("-")[0])
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(cls.payload) - 1}/{len(cls.payload)}")
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(len(cls.payload) - start))
        self.end_headers()
        self.wfile.write(cls.payload[start:])

    def log_message(self, *args):
        pass


@pytest.fixture
def http_server():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _RangeHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server, f"http://127.0.0.1:{server.server_address[1]}/f.bin"
    server.shutdown()
    server.server_close()


def test_download_http_range_and_retry(tmp_path, http_server):
    _, url = http_server
    payload = np.random.default_rng(6).bytes(500_000)
    _RangeHandler.payload, _RangeHandler.fail_first, _RangeHandler.requests = payload, 2, []
    dest = tmp_path / "f.bin"
    (tmp_path / "f.bin.part").write_bytes(payload[:100_000])
    got = download(url, dest, hashlib.sha256(payload).hexdigest(), progress=False, sleep=lambda s: None)
    assert dest.read_bytes() == payload and got.sha256 == hashlib.sha256(payload).hexdigest()
    assert _RangeHandler.requests == ["bytes=100000-"] * 3  # two 503s retried, then resumed
    # a server that ignores Range: restart from zero
    _RangeHandler.honour_range, _RangeHandler.requests = False, []
    dest2 = tmp_path / "g.bin"
    (tmp_path / "g.bin.part").write_bytes(b"junk")
    try:
        download(url, dest2, progress=False)
    finally:
        _RangeHandler.honour_range = True
    assert dest2.read_bytes() == payload


# ------------------------------------------------------------------------------ div2k source

def _zip(path: Path, folder: str, names: list[str], seed: int) -> None:
    with zipfile.ZipFile(path, "w") as zf:
        for i, name in enumerate(names):
            buf = io.BytesIO()
            Image.fromarray(rgb(12, 16, seed + i)).save(buf, format="PNG")
            zf.writestr(f"{folder}/{name}", buf.getvalue())


def _tar(path: Path, folder: str, names: list[str], seed: int) -> None:
    with tarfile.open(path, "w") as tf:
        for i, name in enumerate(names):
            buf = io.BytesIO()
            Image.fromarray(rgb(12, 16, seed + i)).save(buf, format="PNG")
            info = tarfile.TarInfo(f"{folder}/{name}")
            info.size = len(buf.getvalue())
            tf.addfile(info, io.BytesIO(buf.getvalue()))
        extra = tarfile.TarInfo("Flickr2K/Flickr2K_LR_bicubic/X2/000001x2.png")  # ignored
        extra.size = 3
        tf.addfile(extra, io.BytesIO(b"abc"))


@pytest.fixture
def div2k_fixture(tmp_path):
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    _zip(mirror / "DIV2K_train_HR.zip", "DIV2K_train_HR", ["0002.png", "0001.png"], 10)
    _zip(mirror / "DIV2K_valid_HR.zip", "DIV2K_valid_HR", ["0801.png"], 20)
    _tar(mirror / "Flickr2K.tar", "Flickr2K/Flickr2K_HR", ["000001.png", "000002.png"], 30)
    pinned = sha256_file(mirror / "DIV2K_train_HR.zip")
    archives = [
        Archive("DIV2K_train_HR.zip", (mirror / "DIV2K_train_HR.zip").as_uri(), "DIV2K_train_HR",
                "div2k", "train", 2, sha256=pinned),
        Archive("DIV2K_valid_HR.zip", (mirror / "DIV2K_valid_HR.zip").as_uri(), "DIV2K_valid_HR",
                "div2kvalid", "valid", 1),
        Archive("Flickr2K.tar", (mirror / "Flickr2K.tar").as_uri(), "Flickr2K/Flickr2K_HR",
                "flickr2k", "train", 2),
    ]
    return mirror, archives


def test_div2k_source_from_file_urls(tmp_path, div2k_fixture):
    mirror, archives = div2k_fixture
    downloads = tmp_path / "downloads"
    keys = prepare_data.KEYS
    params = params_for(keys, "data.source=div2k", f"data.download_dir={downloads}", "data.min_size=8")
    # an interrupted earlier download of the tar is resumed
    tar_bytes = (mirror / "Flickr2K.tar").read_bytes()
    downloads.mkdir()
    (downloads / "Flickr2K.tar.part").write_bytes(tar_bytes[:5000])
    manifest, _ = prepare_data.prepare(params, tmp_path / "hr", archives=archives, progress=False)
    assert sorted(manifest["files"]) == [
        "train/div2k_0001.png", "train/div2k_0002.png",
        "train/flickr2k_000001.png", "train/flickr2k_000002.png", "valid/div2kvalid_0801.png"]
    assert (downloads / "Flickr2K.tar").read_bytes() == tar_bytes
    assert np.array_equal(read_image(tmp_path / "hr" / "train" / "div2k_0001.png"), rgb(12, 16, 11))
    # trust on first use: hashes recorded, then verified
    sums = dict(line.split()[::-1] for line in (downloads / "SHA256SUMS").read_text().splitlines())
    assert sums["Flickr2K.tar"] == sha256_file(mirror / "Flickr2K.tar")
    assert manifest["archives"]["Flickr2K.tar"]["check"].startswith("trust on first use")
    assert manifest["archives"]["DIV2K_train_HR.zip"]["check"] == "pinned sha256"
    prepare_data.prepare(params, tmp_path / "hr", archives=archives, progress=False)
    # a changed upstream file no longer matches the recorded hash
    (downloads / "SHA256SUMS").write_text(
        (downloads / "SHA256SUMS").read_text().replace(sums["DIV2K_valid_HR.zip"], "1" * 64))
    with pytest.raises(SrnasError) as err:
        prepare_data.prepare(params, tmp_path / "hr3", archives=archives, progress=False)
    assert "DIV2K_valid_HR.zip" in str(err.value) and "1" * 64 in str(err.value)
    assert sums["DIV2K_valid_HR.zip"] in str(err.value)
    assert not (downloads / "DIV2K_valid_HR.zip").exists() and not (tmp_path / "hr3").exists()


def test_div2k_source_checks_counts_and_pinned_hash(tmp_path, div2k_fixture):
    mirror, archives = div2k_fixture
    params = params_for(prepare_data.KEYS, "data.source=div2k", f"data.download_dir={tmp_path / 'dl'}",
                        "data.min_size=8")
    wrong_count = [dataclasses.replace(archives[0], count=800)]
    with pytest.raises(SrnasError, match=r"DIV2K_train_HR.zip: holds 2 PNG images under "
                                         r"DIV2K_train_HR/, expected 800"):
        prepare_data.prepare(params, tmp_path / "hr", archives=wrong_count, progress=False)
    bad_pin = [dataclasses.replace(archives[0], sha256="2" * 64)]
    with pytest.raises(SrnasError, match="sha256 mismatch: expected 2222"):
        prepare_data.prepare(params, tmp_path / "hr", archives=bad_pin, progress=False)
    assert not (tmp_path / "hr").exists()


# ------------------------------------------------------------------------------ splits

DF2K = ([f"div2k_{i:04d}.png" for i in range(1, 801)] + [f"flickr2k_{i:06d}.png" for i in range(1, 2651)]
        + [f"div2kvalid_{i:04d}.png" for i in range(801, 901)])

SPECS = {
    "dlsr": {"pool": "df2k", "parts": {"train": 3000, "valid": 450}},
    "hinas": {"pool": "div2k", "parts": {"train_w": 380, "train_a": 380, "unused": "rest", "valid": 40}},
    "hnas": {"pool": "div2k", "parts": {"weights": 320, "controller": 480}, "valid_benchmark": "Set5"},
    "tpsr": {"pool": "div2k", "parts": {"train": 800}, "valid_pool": "div2k_valid"},
    "trilevelnas": {"pool": "df2k", "parts": {"train_w": 1725, "train_a": 1725}},
}

EXPECTED = {
    "dlsr": {"train": (3000, "div2k_0001", "flickr2k_002200"),
             "valid": (450, "flickr2k_002201", "flickr2k_002650")},
    "hinas": {"train_w": (380, "div2k_0001", "div2k_0380"), "train_a": (380, "div2k_0381", "div2k_0760"),
              "valid": (40, "div2k_0761", "div2k_0800")},
    "hnas": {"weights": (320, "div2k_0001", "div2k_0320"), "controller": (480, "div2k_0321", "div2k_0800")},
    "tpsr": {"train": (800, "div2k_0001", "div2k_0800"),
             "valid": (100, "div2kvalid_0801", "div2kvalid_0900")},
    "trilevelnas": {"train_w": (1725, "div2k_0001", "flickr2k_000925"),
                    "train_a": (1725, "flickr2k_000926", "flickr2k_002650")},
}


@pytest.mark.parametrize("paper", sorted(SPECS))
def test_paper_splits_exact(paper):
    files = list(reversed(DF2K))  # input order does not matter
    split = make_split(files, SPECS[paper], "div2k", paper=paper)
    assert list(split) == list(EXPECTED[paper])
    for part, (n, first, last) in EXPECTED[paper].items():
        block = split[part]
        assert (len(block), block[0], block[-1]) == (n, first + ".png", last + ".png")
        if not part.startswith("valid") or paper != "tpsr":
            pool = sorted(f for f in DF2K if not f.startswith("div2kvalid"))
            i = pool.index(block[0])
            assert block == pool[i:i + n]  # contiguous
    assert not split.scaled
    assert split.valid_benchmark == SPECS[paper].get("valid_benchmark")
    seen = [f for part in split.values() for f in part]
    assert len(seen) == len(set(seen))  # disjoint


def test_splits_scaled_on_small_pools():
    pool = [f"sample_{c}.png" for c in "abcdef"]
    got = {p: {k: len(v) for k, v in make_split(pool, s, "sample", paper=p).items()}
           for p, s in SPECS.items()}
    assert got == {"dlsr": {"train": 5, "valid": 1}, "hinas": {"train_w": 3, "train_a": 2, "valid": 1},
                   "hnas": {"weights": 2, "controller": 4}, "tpsr": {"train": 5, "valid": 1},
                   "trilevelnas": {"train_w": 3, "train_a": 3}}
    split = make_split(pool, SPECS["hinas"], "sample", paper="hinas")
    assert split.scaled and any("scaled" in n for n in split.notes)
    assert split["valid"] == ["sample_f.png"] and split["train_w"] == pool[:3]
    assert split.manifest()["parts"]["train_a"]["first"] == "sample_d.png"
    # a local valid/ folder stands in for the DIV2K validation pool
    local = [f"local_{i}.png" for i in range(4)] + ["localvalid_x.png"]
    assert make_split(local, SPECS["tpsr"], "local", paper="tpsr") == {
        "train": local[:4], "valid": ["localvalid_x.png"]}
    with pytest.raises(SrnasError, match=r"hinas: the training pool holds 2 images, too few for the 3 parts"):
        make_split(pool[:2], SPECS["hinas"], "sample", paper="hinas")


@pytest.mark.parametrize("spec, message", [
    ({"pool": "df2k", "parts": {"train": 3000}, "seed": 1}, "unknown key dlsr.split.seed"),
    ({"pool": "imagenet", "parts": {"train": 3}}, "dlsr.split.pool = 'imagenet'"),
    ({"parts": {"train": 3}}, "missing key dlsr.split.pool"),
    ({"pool": "df2k", "parts": {"train": 0}}, "dlsr.split.parts.train = 0 must be > 0"),
    ({"pool": "df2k", "parts": {"train": -3}}, "dlsr.split.parts.train = -3"),
    ({"pool": "df2k", "parts": {"train": 2.5}}, "dlsr.split.parts.train must be a positive integer"),
    ({"pool": "df2k", "parts": {"a": "rest", "b": "rest"}}, "dlsr.split.parts.b: only one part"),
    ({"pool": "df2k", "parts": {}}, "dlsr.split.parts must be a non-empty mapping"),
    ({"pool": "div2k", "parts": {"train": 800}, "valid_pool": "set5"}, "dlsr.split.valid_pool = 'set5'"),
    ({"pool": "div2k", "parts": {"valid": 8}, "valid_pool": "div2k_valid"}, "keep one"),
    ({"pool": "div2k", "parts": {"train": 700, "valid": 101}}, r"dlsr.split.parts ask for 801 images"),
])
def test_bad_split_specs(spec, message):
    with pytest.raises(SrnasError, match=message):
        make_split(DF2K, spec, "div2k", paper="dlsr")


def test_split_doc_and_validate():
    assert "valid_pool" in SPLIT_SCHEMA_DOC and "rest" in SPLIT_SCHEMA_DOC
    for paper, spec in SPECS.items():
        assert validate_split(spec, paper)["parts"] == spec["parts"]


# ------------------------------------------------------------------------------ benchmarks

def test_prepare_benchmarks(tmp_path):
    root = tmp_path / "bench"
    a, b, grey = rgb(17, 19, 1), rgb(21, 18, 2), rgb(15, 16, 3)[:, :, 0]
    save(root / "Set5" / "HR" / "baby.png", a)
    save(root / "Set5" / "HR" / "bridge.png", grey)
    save(root / "Set14" / "comic.png", b)  # flat layout
    (root / "B100").mkdir()  # present but empty
    keys = prepare_benchmarks.KEYS
    params = params_for(keys, "data.source=div2k", f"data.benchmark_root={root}")
    out = tmp_path / "benchmarks"
    manifest, _ = prepare_benchmarks.prepare(params, out, progress=False)
    assert sorted(manifest["present"]) == ["Set14", "Set5"]
    assert sorted(manifest["absent"]) == ["B100", "Manga109", "Urban100"]
    assert "HR/*.png" in manifest["absent"]["B100"]
    assert np.array_equal(read_image(out / "Set5" / "HR" / "baby.png"), a)
    kept = read_image(out / "Set5" / "HR" / "bridge.png", allow_grey=True)
    assert kept.ndim == 2 and np.array_equal(kept, grey)
    assert np.array_equal(read_image(out / "Set14" / "HR" / "comic.png"), b)
    entry = manifest["present"]["Set5"]["files"]["HR/bridge.png"]
    assert entry["sha256"] == sha256_file(out / "Set5" / "HR" / "bridge.png") and entry["channels"] == 1
    assert entry["source_sha256"] == sha256_file(root / "Set5" / "HR" / "bridge.png")
    assert "warning" in manifest["present"]["Set5"]  # 2 images, the standard Set5 has 5
    assert json.loads((out / "manifest.json").read_text()) == manifest
    # sample source adds the held-out photographs as SampleTest
    params = params_for(keys, "data.sample.test=[chelsea]", "data.sample.train=[rocket]")
    manifest, _ = prepare_benchmarks.prepare(params, tmp_path / "b2", progress=False)
    assert list(manifest["present"]) == ["SampleTest"]
    assert "not a paper benchmark" in manifest["present"]["SampleTest"]["description"]
    import skimage.data

    assert np.array_equal(read_image(tmp_path / "b2" / "SampleTest" / "HR" / "chelsea.png"),
                          skimage.data.chelsea())
    # nothing at all
    with pytest.raises(SrnasError, match="no benchmark set found: data.benchmark_root is not set"):
        prepare_benchmarks.prepare(params_for(keys, "data.source=div2k"), tmp_path / "b3")
    # a bad benchmark image fails the stage
    bad = make_bad("rgba", root / "Set5" / "HR")
    with pytest.raises(SrnasError, match=bad.name):
        prepare_benchmarks.prepare(params_for(keys, "data.source=div2k", f"data.benchmark_root={root}"),
                                   tmp_path / "b4", progress=False)
    assert not (tmp_path / "b4").exists()


# ------------------------------------------------------------------------------ make_lr

def test_make_lr_cli_and_pixels(tmp_path):
    hr = tmp_path / "benchmarks"
    a, grey = rgb(37, 50, 4), rgb(29, 31, 5)[:, :, 0]
    write_png(hr / "SetX" / "HR" / "a.png", a)
    write_png(hr / "SetX" / "HR" / "g.png", grey)
    (hr / "manifest.json").write_text("{}")
    out = tmp_path / "lr"
    proc = run_stage("pipeline.make_lr", "--hr", str(hr), "--out", str(out), "--set", "data.scales=[2,3,4]",
                     cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["sets"] == {"SetX": {"n": 2, "scales": ["X2", "X3", "X4"]}}
    assert len(manifest["files"]) == 6
    for s in (2, 3, 4):
        for name, img in (("a", a), ("g", grey)):
            lr = read_image(out / "SetX" / f"X{s}" / f"{name}.png", allow_grey=True)
            h, w = img.shape[:2]
            assert lr.shape[:2] == (h // s, w // s) and lr.ndim == img.ndim
            assert np.array_equal(lr, downscale(modcrop(img, s), s))
            entry = manifest["files"][f"SetX/X{s}/{name}.png"]
            assert entry["sha256"] == sha256_file(out / "SetX" / f"X{s}" / f"{name}.png")
            assert entry["hr_sha256"] == sha256_file(hr / "SetX" / "HR" / f"{name}.png")
            assert entry["hr"] == f"SetX/HR/{name}.png" and entry["scale"] == s
            assert entry["cropped_shape"][:2] == [h // s * s, w // s * s]
    # bad input: status 2, file named, no output
    (hr / "SetX" / "HR" / "a.png").write_bytes((hr / "SetX" / "HR" / "a.png").read_bytes()[:200])
    proc = run_stage("pipeline.make_lr", "--hr", str(hr), "--out", str(tmp_path / "lr2"), cwd=tmp_path)
    assert proc.returncode == 2 and "error: " in proc.stderr and "a.png" in proc.stderr
    assert not (tmp_path / "lr2").exists() and not list(tmp_path.glob(".lr2*"))


def test_make_lr_training_layout_and_workers(tmp_path):
    hr = tmp_path / "hr"
    write_png(hr / "train" / "sample_x.png", rgb(20, 22, 7))
    write_png(hr / "valid" / "localvalid_y.png", rgb(18, 19, 8))
    m1, metrics = make_lr_stage.make_lr(hr, tmp_path / "lr1", [4, 2], progress=False)
    m2, _ = make_lr_stage.make_lr(hr, tmp_path / "lr2", [2, 4], workers=2, progress=False)
    assert m1["files"] == m2["files"]
    assert sorted(m1["files"]) == ["train/X2/sample_x.png", "train/X4/sample_x.png",
                                   "valid/X2/localvalid_y.png", "valid/X4/localvalid_y.png"]
    assert metrics["images"] == 2 and metrics["lr_files"] == 4
    with pytest.raises(SrnasError, match="no image sets found"):
        make_lr_stage.make_lr(tmp_path / "lr1" / "train" / "X2", tmp_path / "lr3", [2])
