"""Released weights (srnas.weights): table, fetch (no network) and the DLSR loader.

Tests that need the authors' files read them from ``../shared/weights`` relative to the
repository root and skip when it is absent. Nothing is downloaded.
"""

import dataclasses
import hashlib
import io
import re
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from srnas.errors import SrnasError
from srnas.spaces.dlsr import VARIANTS, build_variant
from srnas.weights import WEIGHTS, dlsr_key_map, fetch, load_released_dlsr, sha256_file, verify

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "weights"
DLSR_NAMES = ["dlsr-x2", "dlsr-s-x2", "dlsr-para-loss-x2"]
needs_shared = pytest.mark.skipif(not (SHARED / "dlsr").is_dir(),
                                  reason="../shared/weights is absent")


def shared_path(name):
    return SHARED / WEIGHTS.get(name).relpath


def test_table():
    assert set(WEIGHTS) >= set(DLSR_NAMES) | {"tpsr-nogan-x4", "tpsr-d2-x4", "tpsr-esrgan-x4"}
    for name in WEIGHTS:
        e = WEIGHTS.get(name)
        assert re.fullmatch(r"[0-9a-f]{64}", e.sha256)
        assert re.fullmatch(r"https://raw\.githubusercontent\.com/(DawnHH/DLSR-PyTorch|royson/tpsr)"
                            r"/[0-9a-f]{40}/(checkpoints|pretrained)/" + re.escape(e.filename), e.url)
    for name in DLSR_NAMES:
        assert WEIGHTS.get(name).variant in VARIANTS and WEIGHTS.get(name).scale == 2


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_every_key_has_a_rule(variant):
    mapping = dlsr_key_map(build_variant(variant, 2).state_dict())
    assert None not in mapping.values()
    assert len(set(mapping.values())) == len(mapping)


# ---------------------------------------------------------------------------- released files


@needs_shared
@pytest.mark.parametrize("name", DLSR_NAMES)
def test_shared_files_match_table(name):
    path = shared_path(name)
    assert sha256_file(path) == WEIGHTS.get(name).sha256
    assert path.stat().st_size == WEIGHTS.get(name).size
    # fetch finds a verified copy in place and downloads nothing
    assert fetch(name, SHARED) == path


@needs_shared
@pytest.mark.parametrize("name", DLSR_NAMES)
def test_released_dlsr_loads_strictly(name):
    entry = WEIGHTS.get(name)
    model = load_released_dlsr(shared_path(name), entry.variant)
    ckpt = torch.load(shared_path(name), map_location="cpu", weights_only=True)["state_dict"]
    mapping = dlsr_key_map(model.state_dict())
    assert sorted(mapping.values()) == sorted(ckpt)
    for ours, theirs in mapping.items():
        assert torch.equal(model.state_dict()[ours], ckpt[theirs]), ours


@needs_shared
def test_x4_warm_start_takes_all_but_the_upsampler():
    x2 = load_released_dlsr(shared_path("dlsr-x2"), "dlsr")
    x4 = load_released_dlsr(shared_path("dlsr-x2"), "dlsr", scale=4)
    assert x4.scale == 4 and x4.upsampler[0].out_channels == 48
    for key, value in x2.state_dict().items():
        if not key.startswith("upsampler."):
            assert torch.equal(value, x4.state_dict()[key]), key


@needs_shared
def test_wrong_variant_or_extra_key_is_an_error(tmp_path):
    with pytest.raises(SrnasError, match="shape mismatches"):
        load_released_dlsr(shared_path("dlsr-s-x2"), "dlsr")
    with pytest.raises(SrnasError, match=r"B1\.c1_r\.op\.0\.weight"):  # conv op vs sep conv
        load_released_dlsr(shared_path("dlsr-para-loss-x2"), "dlsr")
    state = torch.load(shared_path("dlsr-x2"), map_location="cpu", weights_only=True)["state_dict"]
    state["extra.weight"] = torch.zeros(1)
    del state["B3.esa.conv3_.bias"]
    bad = tmp_path / "bad.pt"
    torch.save({"state_dict": state}, bad)
    with pytest.raises(SrnasError) as info:
        load_released_dlsr(bad, "dlsr")
    assert "extra.weight" in str(info.value) and "B3.esa.conv3_.bias" in str(info.value)
    with pytest.raises(SrnasError, match="dlsr-para-loss"):
        load_released_dlsr(bad, "dlsr-x")


def _astronaut_pair():
    skimage_data = pytest.importorskip("skimage.data")
    hr = torch.from_numpy(skimage_data.astronaut()[64:192, 160:288].astype(np.float32))
    hr = hr.permute(2, 0, 1)[None]
    # a sanity check only: torch's antialiased bicubic stands in for MATLAB imresize
    lr = F.interpolate(hr, scale_factor=0.5, mode="bicubic", antialias=True,
                       align_corners=False).clamp(0, 255).round()
    return lr, hr


def _psnr_y(a, b, shave=2):
    def y(t):
        t = t.double()
        return 16 + (65.481 * t[:, 0] + 128.553 * t[:, 1] + 24.966 * t[:, 2]) / 255
    d = (y(a) - y(b))[..., shave:-shave, shave:-shave]
    return float(10 * torch.log10(255.0 ** 2 / (d ** 2).mean()))


@needs_shared
@pytest.mark.parametrize("name", DLSR_NAMES)
def test_released_models_beat_bicubic(name):
    lr, hr = _astronaut_pair()
    bicubic = F.interpolate(lr, scale_factor=2, mode="bicubic",
                            align_corners=False).clamp(0, 255).round()
    model = load_released_dlsr(shared_path(name), WEIGHTS.get(name).variant)
    with torch.no_grad():
        sr = model(lr).clamp(0, 255).round()
    assert _psnr_y(sr, hr) > _psnr_y(bicubic, hr) + 1.0


@needs_shared
def test_para_loss_wiring_order_matters():
    """The para-loss genotype reads cell3 <- cat(cell2, cell1): reversing the pairs breaks it."""
    lr, hr = _astronaut_pair()
    model = load_released_dlsr(shared_path("dlsr-para-loss-x2"), "dlsr-para-loss")
    with torch.no_grad():
        good = _psnr_y(model(lr).clamp(0, 255).round(), hr)
        model.wiring = [tuple(reversed(p)) for p in model.wiring]
        swapped = _psnr_y(model(lr).clamp(0, 255).round(), hr)
    assert good > swapped + 1.0


# ---------------------------------------------------------------------------- fetch


@pytest.fixture
def payload():
    return bytes(np.random.default_rng(0).integers(0, 256, 300_000, dtype=np.uint8))


def _entry(payload, url):
    base = WEIGHTS.get("dlsr-x2")
    return dataclasses.replace(base, url=url, sha256=hashlib.sha256(payload).hexdigest(),
                               size=len(payload))


class _Response(io.BytesIO):
    def __init__(self, data, status, headers):
        super().__init__(data)
        self.status, self.headers = status, headers


class _RangeServer:
    """Stands in for urllib's urlopen: serves ``data``, honouring Range if ``ranges``."""

    def __init__(self, data, ranges=True):
        self.data, self.ranges, self.requests = data, ranges, []

    def __call__(self, request, timeout=None):
        header = request.get_header("Range")
        self.requests.append(header)
        if header and self.ranges:
            start = int(re.fullmatch(r"bytes=(\d+)-", header)[1])
            body = self.data[start:]
            return _Response(body, 206, {
                "Content-Range": f"bytes {start}-{len(self.data) - 1}/{len(self.data)}",
                "Content-Length": str(len(body))})
        return _Response(self.data, 200, {"Content-Length": str(len(self.data))})


@pytest.fixture
def server(monkeypatch):
    def install(data, ranges=True):
        fake = _RangeServer(data, ranges)
        monkeypatch.setattr(urllib.request, "urlopen", fake)
        return fake
    return install


def test_fetch_file_url(payload, tmp_path):
    src = tmp_path / "src.bin"
    src.write_bytes(payload)
    entry = _entry(payload, src.as_uri())
    out = fetch(entry, tmp_path / "w", progress=False)
    assert out == tmp_path / "w" / "dlsr" / entry.filename
    assert out.read_bytes() == payload
    assert sorted(p.name for p in out.parent.iterdir()) == [entry.filename]


def test_fetch_resumes_from_part(payload, tmp_path, server):
    fake = server(payload)
    entry = _entry(payload, "https://example.invalid/w.pt")
    dest = tmp_path / "dlsr" / entry.filename
    dest.parent.mkdir(parents=True)
    part = dest.with_name(dest.name + ".part")
    part.write_bytes(payload[:123_456])
    assert fetch(entry, tmp_path, progress=False) == dest
    assert fake.requests == ["bytes=123456-"]
    assert dest.read_bytes() == payload and not part.exists()
    # a second call finds the verified file and opens nothing
    assert fetch(entry, tmp_path, progress=False) == dest and len(fake.requests) == 1


def test_fetch_restarts_when_server_ignores_range(payload, tmp_path, server):
    server(payload, ranges=False)
    entry = _entry(payload, "https://example.invalid/w.pt")
    part = tmp_path / "dlsr" / (entry.filename + ".part")
    part.parent.mkdir(parents=True)
    part.write_bytes(payload[:1000])
    assert fetch(entry, tmp_path, progress=False).read_bytes() == payload


def test_fetch_sha_mismatch(payload, tmp_path, server):
    wrong_bytes = payload[:-1] + bytes([payload[-1] ^ 1])
    server(wrong_bytes)
    entry = _entry(payload, "https://example.invalid/w.pt")
    with pytest.raises(SrnasError) as info:
        fetch(entry, tmp_path, progress=False)
    message = str(info.value)
    wrong = hashlib.sha256(wrong_bytes).hexdigest()
    assert entry.filename in message and entry.sha256 in message and wrong in message
    assert list((tmp_path / "dlsr").iterdir()) == []   # neither the final name nor a .part


def test_fetch_local_path(payload, tmp_path, monkeypatch):
    monkeypatch.setattr(urllib.request, "urlopen", None)   # must not be used
    entry = _entry(payload, "https://example.invalid/w.pt")
    local = tmp_path / "mine.pt"
    local.write_bytes(payload)
    out = fetch(entry, tmp_path / "w", local_path=local)
    assert out.read_bytes() == payload
    local.write_bytes(payload[:10])
    with pytest.raises(SrnasError, match=r"mine\.pt.*sha256 mismatch") as info:
        fetch(entry, tmp_path / "w2", local_path=local)
    assert entry.sha256 in str(info.value)
    assert not (tmp_path / "w2" / "dlsr" / entry.filename).exists()
    with pytest.raises(SrnasError, match="not found"):
        verify(tmp_path / "none.pt", entry)
