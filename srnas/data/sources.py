"""Training-data sources, selected by ``data.source``: ``sample``, ``div2k`` or ``local``.

Every source yields the same thing, a list of :class:`SourceImage` (an output name, a subset
``train`` or ``valid``, where it came from, and a reader returning validated uint8 RGB
pixels), which ``pipeline/prepare_data.py`` writes to ``<out>/train`` and ``<out>/valid``.
Output names carry a pool prefix so that per-paper splits (``srnas.data.splits``) can select
pools by name, and sorted order is the papers' order within each pool:

=================  ==========================================  =====================
source             training images (``train/``)                ``valid/``
=================  ==========================================  =====================
``sample``         ``sample_<name>.png`` (scikit-image photos)  none
``div2k``          ``div2k_0001`` .. ``div2k_0800``,            ``div2kvalid_0801`` ..
                   ``flickr2k_000001`` .. ``flickr2k_002650``   ``div2kvalid_0900``
``local``          ``local_<stem>.png``                         ``localvalid_<stem>``
=================  ==========================================  =====================

``div2k`` downloads three archives into ``data.download_dir`` (resumable, see
``srnas.data.download``) and reads the PNGs straight out of them (no second copy on disk):
DIV2K train HR (800 images), DIV2K valid HR (100, TPSR's validation pool) and Flickr2K
(2650); DIV2K train + Flickr2K is DF2K (3450). Hash checks:

- the DIV2K archives' sha256 are pinned (the values TensorFlow Datasets verifies its own
  downloads against, ``tensorflow_datasets/url_checksums/div2k.txt``, with sizes
  3,530,603,713 and 448,993,893 bytes);
- Flickr2K's sha256 is not published anywhere we could find, so it is trust-on-first-use:
  the first download records the hash in ``<download_dir>/SHA256SUMS`` (``sha256sum``
  format) and later runs verify against it. Its md5, as listed by two independent dataset
  libraries (torchSR's ``Flickr2K`` class among them), is checked as well.

An archive placed in ``data.download_dir`` by hand is used as is (after the same checks),
which is the way to run offline or from a mirror. Image counts inside the archives are
checked (800, 100, 2650) with an error naming the archive.
"""

from __future__ import annotations

import contextlib
import logging
import tarfile
import zipfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from srnas.data.download import download
from srnas.data.images import check_array, decode_image, list_images, read_image
from srnas.errors import SrnasError
from srnas.io import atomic_write_text
from srnas.params import Params

__all__ = [
    "ARCHIVES",
    "Archive",
    "DataSource",
    "SAMPLE_IMAGES",
    "SourceImage",
    "open_source",
    "sample_images",
    "sample_test_images",
]

log = logging.getLogger("srnas.data")

SUMS_FILE = "SHA256SUMS"


@dataclass(frozen=True)
class SourceImage:
    """One image a source provides: ``<subset>/<name>.png`` in the prepared folder."""

    name: str
    subset: str  # "train" or "valid"
    origin: str  # human-readable provenance, recorded in the manifest
    reader: Callable[[], np.ndarray] = field(repr=False, compare=False)

    def read(self) -> np.ndarray:
        return self.reader()


@dataclass
class DataSource:
    kind: str
    images: list[SourceImage]
    description: str
    details: dict[str, Any] = field(default_factory=dict)


# ----------------------------------------------------------------------------- sample

def _skimage(name: str, index: int | None = None) -> Callable[[], np.ndarray]:
    def load() -> np.ndarray:
        import skimage.data

        out = getattr(skimage.data, name)()
        return out[index] if index is not None else out

    return load


# The real RGB photographs that scikit-image ships inside its wheel (no download needed).
SAMPLE_IMAGES: dict[str, Callable[[], np.ndarray]] = {
    "astronaut": _skimage("astronaut"),
    "chelsea": _skimage("chelsea"),
    "coffee": _skimage("coffee"),
    "hubble_deep_field": _skimage("hubble_deep_field"),
    "immunohistochemistry": _skimage("immunohistochemistry"),
    "motorcycle_left": _skimage("stereo_motorcycle", 0),
    "motorcycle_right": _skimage("stereo_motorcycle", 1),
    "retina": _skimage("retina"),
    "rocket": _skimage("rocket"),
}

SAMPLE_NOTE = ("scikit-image sample photographs (skimage.data, bundled with scikit-image "
               "{version}; not DIV2K and not a paper's data): a tiny stand-in so that the "
               "whole pipeline runs offline")


def _sample_names(params: Params, key: str) -> list[str]:
    names = list(params.get(key))
    for name in names:
        if name not in SAMPLE_IMAGES:
            raise SrnasError(f"params: {key}: unknown sample image {name!r}; available: "
                             f"{', '.join(sorted(SAMPLE_IMAGES))}")
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise SrnasError(f"params: {key}: {dup[0]!r} is listed twice")
    return names


def _check_sample_overlap(params: Params) -> tuple[list[str], list[str]]:
    train = _sample_names(params, "data.sample.train")
    test = _sample_names(params, "data.sample.test")
    both = [n for n in train if n in test]
    if both:
        raise SrnasError(f"params: data.sample.train and data.sample.test both list {both[0]!r}; "
                         f"a test image must not be trained on")
    return train, test


def _sample(name: str, subset: str, prefix: str, min_size: int) -> SourceImage:
    where = f"scikit-image sample image {name!r}"
    return SourceImage(f"{prefix}{name}", subset, f"skimage.data:{name}",
                       lambda: check_array(SAMPLE_IMAGES[name](), where, min_size=min_size))


def sample_images(params: Params) -> DataSource:
    """The ``data.sample.train`` photographs (the held-out test ones are benchmarks)."""
    import skimage

    train, _ = _check_sample_overlap(params)
    min_size = params.get("data.min_size")
    images = [_sample(n, "train", "sample_", min_size) for n in train]
    note = SAMPLE_NOTE.format(version=skimage.__version__)
    return DataSource("sample", images, "scikit-image sample photographs",
                      {"note": note, "names": train})


def sample_test_images(params: Params) -> list[SourceImage]:
    """The held-out ``data.sample.test`` photographs, named without a pool prefix."""
    _, test = _check_sample_overlap(params)
    return [_sample(n, "test", "", 0) for n in test]


# ----------------------------------------------------------------------------- div2k

@dataclass(frozen=True)
class Archive:
    """One downloadable archive of HR PNGs and what must be inside it."""

    filename: str
    url: str
    folder: str  # folder inside the archive that holds the PNGs (directly)
    prefix: str  # pool prefix of the output names
    subset: str  # "train" or "valid"
    count: int
    sha256: str | None = None  # pinned hash; None = trust on first use (SHA256SUMS)
    md5: str | None = None
    description: str = ""


ARCHIVES: tuple[Archive, ...] = (
    Archive("DIV2K_train_HR.zip", "https://data.vision.ee.ethz.ch/cvl/DIV2K/DIV2K_train_HR.zip",
            "DIV2K_train_HR", "div2k", "train", 800,
            sha256="9d0b9c463f6e35b6c62cc6a930ee2224f670b34c1df841a57670f9acf0f6c335",  # 3530603713 B
            description="DIV2K training HR images (Agustsson & Timofte, NTIRE 2017)"),
    Archive("DIV2K_valid_HR.zip", "https://data.vision.ee.ethz.ch/cvl/DIV2K/DIV2K_valid_HR.zip",
            "DIV2K_valid_HR", "div2kvalid", "valid", 100,
            sha256="20dd31fd84d777bc1cf5d6b7654a3f569c0aec74458ae094122ad1d0489900fc",  # 448993893 B
            description="DIV2K validation HR images"),
    Archive("Flickr2K.tar", "https://cv.snu.ac.kr/research/EDSR/Flickr2K.tar",
            "Flickr2K/Flickr2K_HR", "flickr2k", "train", 2650,
            sha256=None, md5="5d3f39443d5e9489bff8963f8f26cb03",
            description="Flickr2K HR images (Lim et al., EDSR, 2017)"),
)


def _read_sums(path: Path) -> dict[str, str]:
    sums: dict[str, str] = {}
    if path.is_file():
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip() or line.startswith("#"):
                continue
            parts = line.split(maxsplit=1)
            if len(parts) != 2 or len(parts[0]) != 64:
                raise SrnasError(f"{path}:{n}: not a `sha256sum` line: {line!r}; fix or delete it")
            sums[parts[1].lstrip("*").strip()] = parts[0].lower()
    return sums


def _write_sums(path: Path, sums: dict[str, str]) -> None:
    atomic_write_text(path, "".join(f"{h}  {name}\n" for name, h in sorted(sums.items())))


class _ArchiveReader:
    """Keeps archives open while their images are read; closes them at the end."""

    def __init__(self) -> None:
        self._stack = contextlib.ExitStack()

    def close(self) -> None:
        self._stack.close()

    def members(self, path: Path, archive: Archive, min_size: int) -> list[SourceImage]:
        folder = PurePosixPath(archive.folder)
        try:
            if path.name.lower().endswith(".zip"):
                zf = self._stack.enter_context(zipfile.ZipFile(path))
                names = [n for n in zf.namelist() if _in_folder(n, folder)]
                read = zf.read
            else:
                tf = self._stack.enter_context(tarfile.open(path, "r:*"))
                members = {m.name: m for m in tf.getmembers() if m.isfile() and _in_folder(m.name, folder)}
                names = list(members)

                def read(name: str) -> bytes:
                    handle = tf.extractfile(members[name])
                    assert handle is not None
                    return handle.read()
        except (zipfile.BadZipFile, tarfile.TarError, EOFError, OSError) as exc:
            raise SrnasError(f"{path}: damaged archive ({exc}); delete it and re-run to download "
                             f"it again") from None
        names.sort(key=lambda n: PurePosixPath(n).name)
        if len(names) != archive.count:
            raise SrnasError(
                f"{path}: holds {len(names)} PNG images under {archive.folder}/, expected "
                f"{archive.count} ({archive.description or archive.filename}); the archive is "
                f"incomplete or not the official one: delete it (and its line in {SUMS_FILE}) "
                f"and re-run")
        images = []
        for name in names:
            stem = PurePosixPath(name).stem
            where = f"{path}:{name}"

            def reader(name: str = name, where: str = where) -> np.ndarray:
                try:
                    data = read(name)
                except (zipfile.BadZipFile, tarfile.TarError, EOFError, OSError) as exc:
                    raise SrnasError(f"{where}: cannot read it from the archive ({exc}); delete "
                                     f"the archive and re-run") from None
                return decode_image(data, where, min_size=min_size)

            images.append(SourceImage(f"{archive.prefix}_{stem}", archive.subset,
                                      f"{archive.filename}:{name}", reader))
        return images


def _in_folder(name: str, folder: PurePosixPath) -> bool:
    p = PurePosixPath(name)
    return p.parent == folder and p.suffix.lower() == ".png" and not p.name.startswith(".")


def fetch_archives(download_dir: Path, archives: Sequence[Archive] = ARCHIVES, *,
                   progress: bool = True) -> dict[str, dict[str, Any]]:
    """Download (or verify) every archive; record first-use hashes in ``SHA256SUMS``."""
    download_dir.mkdir(parents=True, exist_ok=True)
    sums_path = download_dir / SUMS_FILE
    sums = _read_sums(sums_path)
    info: dict[str, dict[str, Any]] = {}
    for archive in archives:
        expected = archive.sha256 or sums.get(archive.filename)
        got = download(archive.url, download_dir / archive.filename, expected,
                       md5=archive.md5, progress=progress)
        if sums.get(archive.filename) != got.sha256:
            if archive.filename not in sums:
                log.info("%s: sha256 %s recorded in %s (trust on first use)",
                         archive.filename, got.sha256, sums_path)
            sums[archive.filename] = got.sha256
            _write_sums(sums_path, sums)
        info[archive.filename] = {
            "url": archive.url,
            "sha256": got.sha256,
            "check": "pinned sha256" if archive.sha256 else
                     f"trust on first use ({SUMS_FILE})" + (" + published md5" if archive.md5 else ""),
            "images": archive.count,
            "description": archive.description,
        }
    return info


@contextlib.contextmanager
def _div2k(params: Params, archives: Sequence[Archive], progress: bool) -> Iterator[DataSource]:
    download_dir = Path(params.get("data.download_dir"))
    min_size = params.get("data.min_size")
    info = fetch_archives(download_dir, archives, progress=progress)
    reader = _ArchiveReader()
    try:
        images: list[SourceImage] = []
        for archive in archives:
            images += reader.members(download_dir / archive.filename, archive, min_size)
        description = "DF2K = DIV2K train HR + Flickr2K HR; DIV2K valid HR as valid/"
        yield DataSource("div2k", images, description, {"archives": info})
    finally:
        reader.close()


# ----------------------------------------------------------------------------- local

def _local_folder(params: Params, key: str, subset: str, prefix: str, min_size: int) -> list[SourceImage]:
    folder = Path(params.get(key))
    if not folder.is_dir():
        raise SrnasError(f"params: {key} = {str(folder)!r}: folder not found; point it at a "
                         f"folder of HR images")
    files = list_images(folder, what=f"{key} folder")
    seen: dict[str, Path] = {}
    images = []
    for path in files:
        if path.stem in seen:
            raise SrnasError(f"{path}: same name as {seen[path.stem].name} in {key}; output names "
                             f"come from file stems, so rename one of them")
        seen[path.stem] = path
        images.append(SourceImage(f"{prefix}_{path.stem}", subset, str(path),
                                  lambda p=path: read_image(p, min_size=min_size)))
    return images


def local_images(params: Params) -> DataSource:
    min_size = params.get("data.min_size")
    if params.get("data.local.train_hr") is None:
        raise SrnasError("params: data.source is 'local' but data.local.train_hr is not set; "
                         "set it to a folder of HR training images")
    images = _local_folder(params, "data.local.train_hr", "train", "local", min_size)
    if params.get("data.local.valid_hr") is not None:
        images += _local_folder(params, "data.local.valid_hr", "valid", "localvalid", min_size)
    return DataSource("local", images, "local HR folders (data.local)",
                      {"train_hr": params.get("data.local.train_hr"),
                       "valid_hr": params.get("data.local.valid_hr")})


# ----------------------------------------------------------------------------- entry point

@contextlib.contextmanager
def open_source(params: Params, *, archives: Sequence[Archive] | None = None,
                progress: bool = True) -> Iterator[DataSource]:
    """The source named by ``data.source``; keep it open while its images are read.

    ``archives`` replaces :data:`ARCHIVES` (tests use ``file://`` fixtures).
    """
    kind = params.get("data.source")
    if kind == "sample":
        yield sample_images(params)
    elif kind == "local":
        yield local_images(params)
    elif kind == "div2k":
        with _div2k(params, ARCHIVES if archives is None else archives, progress) as source:
            yield source
    else:  # params validation already restricts the choices
        raise SrnasError(f"params: data.source = {kind!r} is not one of sample, div2k, local")
