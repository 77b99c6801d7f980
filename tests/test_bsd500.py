"""BSDS500: download (file:// mirror), safe extraction, the HiNAS split (tiny fake archive)."""

from __future__ import annotations

import hashlib
import io
import tarfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from srnas.data.bsd500 import (
    ARCHIVE_NAME,
    IMAGES_DIR,
    SUBSET_COUNTS,
    bsd500_subsets,
    extract_bsd500,
    fetch_bsd500,
    split_bsd500,
)
from srnas.errors import SrnasError
from srnas.io import MARKER


def _jpeg(seed: int) -> bytes:
    buf = io.BytesIO()
    pixels = np.random.default_rng(seed).integers(0, 256, (6, 9, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def _add(tf: tarfile.TarFile, name: str, data: bytes = b"", **attrs) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    for key, value in attrs.items():
        setattr(info, key, value)
    tf.addfile(info, io.BytesIO(data) if data else None)


# Official-looking names: BSDS500 ids are numbers and 100007 sorts before 10081 by name.
NAMES = {
    "train": [f"{100000 + 17 * i}" for i in range(200)],
    "val": [f"{2000 + 31 * i}" for i in range(100)],
    "test": [f"{300000 + 13 * i}" for i in range(200)],
}


def _official(path: Path, counts: dict[str, int] | None = None, extra=()) -> Path:
    """A tiny archive in the official layout (one JPEG reused: extraction does not decode)."""
    counts = counts or SUBSET_COUNTS
    jpeg = _jpeg(0)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w:gz") as tf:
        _add(tf, "BSR", type=tarfile.DIRTYPE, mode=0o755)
        for subset, n in counts.items():
            for stem in NAMES[subset][:n]:
                _add(tf, f"{IMAGES_DIR}/{subset}/{stem}.jpg", jpeg)
            _add(tf, f"{IMAGES_DIR}/{subset}/Thumbs.db", b"not an image")
        _add(tf, "BSR/BSDS500/data/groundTruth/train/100000.mat", b"MATLAB 5.0")
        for add in extra:
            add(tf)
    return path


def test_extract_and_split_official_layout(tmp_path):
    archive = _official(tmp_path / ARCHIVE_NAME)
    dest = extract_bsd500(archive, tmp_path / "bsd500")
    assert (dest / MARKER).is_file() and (dest / "BSR/BSDS500/data/groundTruth/train/100000.mat").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == [ARCHIVE_NAME, "bsd500"]  # no work/lock left
    subsets = bsd500_subsets(dest)
    assert {k: len(v) for k, v in subsets.items()} == {"train": 200, "val": 100, "test": 200}
    split = split_bsd500(dest)
    assert sorted(split) == ["test", "train"]
    assert len(split["train"]) == 300 and len(split["test"]) == 200
    stems = [p.stem for p in split["train"]]
    assert sorted(stems) == sorted(NAMES["train"] + NAMES["val"])
    assert stems == sorted(stems) and stems[0] == "100000" and stems[-1] == "5069"  # name order
    assert [p.stem for p in split["test"]] == sorted(NAMES["test"])
    assert all(p.suffix == ".jpg" and p.is_file() for p in split["train"] + split["test"])
    # the images folder itself, or its parents, work as roots too
    assert split_bsd500(dest / IMAGES_DIR) == split
    # same archive again: reused as is; force re-extracts
    (dest / "BSR" / "user_note").write_text("x")
    assert extract_bsd500(archive, dest) == dest and (dest / "BSR" / "user_note").exists()
    extract_bsd500(archive, dest, force=True)
    assert not (dest / "BSR" / "user_note").exists()


def test_split_counts_checked(tmp_path):
    archive = _official(tmp_path / ARCHIVE_NAME, {"train": 200, "val": 100, "test": 199})
    dest = extract_bsd500(archive, tmp_path / "bsd500")
    with pytest.raises(SrnasError, match=r"test: holds 199 images, expected 200 \(BSDS500 test set\)"):
        split_bsd500(dest)
    # the same folder is fine as a user's own ("local") data
    assert len(split_bsd500(dest, local=True)["test"]) == 199
    with pytest.raises(SrnasError, match="no BSDS500 image folders found.*local=True"):
        split_bsd500(tmp_path)
    with pytest.raises(SrnasError, match="nowhere: BSDS500 folder not found"):
        split_bsd500(tmp_path / "nowhere")


def test_local_folders(tmp_path):
    def save(path: Path, seed: int) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(_jpeg(seed))

    # same layout without the BSR nesting and without val/
    for i, stem in enumerate(["b", "a"]):
        save(tmp_path / "own" / "train" / f"{stem}.jpg", i)
    save(tmp_path / "own" / "test" / "t1.png", 5)
    split = split_bsd500(tmp_path / "own", local=True)
    assert [p.name for p in split["train"]] == ["a.jpg", "b.jpg"] and [p.name for p in split["test"]] == ["t1.png"]
    with pytest.raises(SrnasError, match="train: holds 2 images, expected 200"):
        split_bsd500(tmp_path / "own")
    # flat folder: all images are test images
    save(tmp_path / "flat" / "x.jpg", 1)
    save(tmp_path / "flat" / "y.jpg", 2)
    assert split_bsd500(tmp_path / "flat", local=True) == {
        "train": [], "test": [tmp_path / "flat" / "x.jpg", tmp_path / "flat" / "y.jpg"]}
    # a test image also in train is refused (names key the noise and the outputs)
    save(tmp_path / "own" / "train" / "t1.jpg", 6)
    with pytest.raises(SrnasError, match="t1.png: same name as .*t1.jpg"):
        split_bsd500(tmp_path / "own", local=True)


def _escape_dotdot(tf):
    _add(tf, "BSR/../../evil.txt", b"pwned")


def _absolute(tf):
    _add(tf, "/tmp/srnas_abs_evil.txt", b"pwned")


def _symlink_out(tf):
    _add(tf, "BSR/BSDS500/link", type=tarfile.SYMTYPE, linkname="../../../outside")


def _symlink_abs(tf):
    _add(tf, "BSR/passwd", type=tarfile.SYMTYPE, linkname="/etc/passwd")


def _hardlink_out(tf):
    _add(tf, "BSR/hard", type=tarfile.LNKTYPE, linkname="../outside.txt")


def _device(tf):
    _add(tf, "BSR/null", type=tarfile.CHRTYPE, devmajor=1, devminor=3)


def _two_link_escape(tf):
    # each link alone resolves inside on paper; together "here/up" would point at dest/..
    _add(tf, "here", type=tarfile.SYMTYPE, linkname=".")
    _add(tf, "here/up", type=tarfile.SYMTYPE, linkname="..")


def _link_then_write(tf):
    _add(tf, "BSR/dir", type=tarfile.SYMTYPE, linkname="BSDS500")
    _add(tf, "BSR/dir/file.txt", b"through a link")


EVIL = {
    "dotdot": (_escape_dotdot, "BSR/../../evil.txt", "contains '..'"),
    "absolute": (_absolute, "/tmp/srnas_abs_evil.txt", "absolute path"),
    "symlink_out": (_symlink_out, "BSR/BSDS500/link", "resolves outside"),
    "symlink_abs": (_symlink_abs, "BSR/passwd", "symbolic link to the absolute path '/etc/passwd'"),
    "hardlink_out": (_hardlink_out, "BSR/hard", "hard link to '../outside.txt' and its target resolves outside"),
    "device": (_device, "BSR/null", "device file"),
    "two_links": (_two_link_escape, "here/up", "passes through the archive's symbolic link 'here'"),
    "through_link": (_link_then_write, "BSR/dir/file.txt", "passes through the archive's symbolic link 'BSR/dir'"),
}


@pytest.mark.parametrize("kind", sorted(EVIL))
def test_unsafe_members_rejected_nothing_written(tmp_path, kind):
    add, member, why = EVIL[kind]
    archive = _official(tmp_path / "in" / ARCHIVE_NAME, {"train": 2, "val": 1, "test": 2}, extra=[add])
    with pytest.raises(SrnasError) as err:
        extract_bsd500(archive, tmp_path / "out" / "bsd500")
    assert f"member {member!r}" in str(err.value) and why in str(err.value), str(err.value)
    assert str(archive) in str(err.value)
    # refused before anything is written: no dest, no .partial work folder, no lock file
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in"]
    assert sorted(p.name for p in (tmp_path / "in").iterdir()) == [ARCHIVE_NAME]
    assert not Path("/tmp/srnas_abs_evil.txt").exists()


def test_damaged_archive(tmp_path):
    archive = _official(tmp_path / ARCHIVE_NAME, {"train": 2, "val": 1, "test": 2})
    data = archive.read_bytes()
    archive.write_bytes(data[: len(data) // 2])
    with pytest.raises(SrnasError, match="damaged or unreadable archive"):
        extract_bsd500(archive, tmp_path / "bsd500")
    assert not (tmp_path / "bsd500").exists()
    with pytest.raises(SrnasError, match="archive not found"):
        extract_bsd500(tmp_path / "none.tgz", tmp_path / "bsd500")


def test_fetch_pinned_and_trust_on_first_use(tmp_path):
    mirror = _official(tmp_path / "mirror" / ARCHIVE_NAME, {"train": 2, "val": 1, "test": 2})
    digest = hashlib.sha256(mirror.read_bytes()).hexdigest()
    # pinned hash: verified, and recorded beside the archive
    got = fetch_bsd500(tmp_path / "dl", url=mirror.as_uri(), sha256=digest, progress=False)
    assert got.path == tmp_path / "dl" / ARCHIVE_NAME and got.sha256 == digest
    assert (tmp_path / "dl" / "SHA256SUMS").read_text() == f"{digest}  {ARCHIVE_NAME}\n"
    with pytest.raises(SrnasError, match="sha256 mismatch"):
        fetch_bsd500(tmp_path / "dl", url=mirror.as_uri(), sha256="0" * 64, progress=False)
    assert not (tmp_path / "dl" / ARCHIVE_NAME).exists()  # a file failing its hash is removed
    # trust on first use: the first download records the hash, later runs check against it
    got = fetch_bsd500(tmp_path / "tofu", url=mirror.as_uri(), sha256=None, progress=False)
    assert got.sha256 == digest
    assert (tmp_path / "tofu" / "SHA256SUMS").read_text() == f"{digest}  {ARCHIVE_NAME}\n"
    (tmp_path / "tofu" / ARCHIVE_NAME).write_bytes(b"a different file")
    with pytest.raises(SrnasError, match=f"expected {digest}"):
        fetch_bsd500(tmp_path / "tofu", url=mirror.as_uri(), sha256=None, progress=False)
    # the fetched archive goes through the real extraction
    fetch_bsd500(tmp_path / "tofu", url=mirror.as_uri(), sha256=None, progress=False)
    dest = extract_bsd500(tmp_path / "tofu" / ARCHIVE_NAME, tmp_path / "x")
    assert len(split_bsd500(dest, local=True)["train"]) == 3


def test_prepare_stage_extracts_the_downloaded_archive_and_writes_the_paper_split(tmp_path, monkeypatch):
    """pipeline.prepare_data --source bsd500 without --local: the fetched archive (here a tiny
    one in the official layout, handed over by a stand-in for the download) goes through the
    real extraction and split; 300 training PNGs and BSD200."""
    import srnas.data.bsd500 as bsd500
    from pipeline.prepare_data import prepare_bsd500
    from srnas.data.download import Downloaded
    from srnas.io import read_json

    archive = _official(tmp_path / "dl" / ARCHIVE_NAME)
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()
    monkeypatch.setattr(bsd500, "fetch_bsd500", lambda d, progress=True: Downloaded(archive, digest))
    metrics = prepare_bsd500(tmp_path / "hr", tmp_path / "bench", download_dir=tmp_path / "dl", local=None,
                             progress=False)
    assert metrics["n_train"] == 300 and metrics["n_test"] == 200
    train = sorted(p.name for p in (tmp_path / "hr/train").glob("*.png"))
    assert len(train) == 300 and train[0] == f"bsd500_{sorted(NAMES['train'] + NAMES['val'])[0]}.png"
    assert len(list((tmp_path / "bench/BSD200/HR").glob("*.png"))) == 200
    manifest = read_json(tmp_path / "hr/manifest.json")
    assert manifest["sha256"] == digest and manifest["counts"] == {"train": 300}
    assert (tmp_path / "dl/BSR_bsds500" / IMAGES_DIR / "test").is_dir()     # extracted beside the download
