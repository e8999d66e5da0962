"""How pairs are matched: two folders joined by file stem (extensions may differ).

A pair key is the path relative to its folder without the extension, e.g. ``scene/0001`` when recursive. With
``volumes`` (``mmfuse run``), medical volumes pair the same way: a NIfTI file by its name without ``.nii.gz`` /
``.nii``, a DICOM series (a sub-folder holding DICOM files) by its folder name; a series folder is a leaf, never
searched for images.
Everything that does not pair cleanly is reported, never silently dropped: files present on one side only,
and keys that are ambiguous because two files share a stem (``0001.png`` and ``0001.jpg``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from mmfuse_cli.io import is_image_file
from mmfuse_cli.volume_io import is_dicom_series, is_nifti_path, volume_stem


@dataclass(frozen=True)
class Pair:
    """Two files that belong together. ``key`` is the relative path without extension (``/`` separated)."""

    key: str
    a: Path
    b: Path


@dataclass
class Pairing:
    """Result of matching two folders."""

    pairs: list[Pair] = field(default_factory=list)
    only_in_a: list[Path] = field(default_factory=list)
    only_in_b: list[Path] = field(default_factory=list)
    ambiguous: dict[str, list[Path]] = field(default_factory=dict)

    def problems(self) -> list[tuple[str, str]]:
        """``(key_or_path, reason)`` for every file that did not pair, in a stable order."""
        out: list[tuple[str, str]] = []
        for p in self.only_in_a:
            out.append((str(p), "no partner in the second folder"))
        for p in self.only_in_b:
            out.append((str(p), "no partner in the first folder"))
        for key, paths in sorted(self.ambiguous.items()):
            names = ", ".join(str(p) for p in paths)
            out.append((key, f"duplicate stem: {names}"))
        return out


REPORT_THUMBS = ("report", "thumbs")
"""Where ``mmfuse report`` keeps its thumbnails inside a run folder: never images of the run."""


def _is_report_thumb(parts: tuple[str, ...]) -> bool:
    return any(parts[i : i + 2] == REPORT_THUMBS for i in range(len(parts) - 1))


def list_images(folder: Path, recursive: bool = False, exclude: Path | None = None) -> list[Path]:
    """Image files in ``folder`` (sorted). Hidden files, mmfuse's own temporary files, a report's thumbnails
    (``report/thumbs/``) and anything under ``exclude`` (a run's output folder inside its input) are skipped."""
    folder = Path(folder)
    skip = _inside(Path(exclude), folder) if exclude is not None else None
    if not folder.is_dir():
        raise NotADirectoryError(f"{folder}: not a directory")
    pattern = "**/*" if recursive else "*"
    found = [
        p
        for p in folder.glob(pattern)
        if p.is_file()
        and is_image_file(p)
        and not any(part.startswith(".") for part in p.relative_to(folder).parts)
        and not _is_report_thumb(p.relative_to(folder).parts)
        and not (skip is not None and p.resolve().is_relative_to(skip))
    ]
    return sorted(found)


def list_volumes(folder: Path, recursive: bool = False, exclude: Path | None = None) -> list[Path]:
    """NIfTI files and DICOM series folders in ``folder`` (sorted; sub-folders searched when ``recursive``, a
    series folder never); skipped as :func:`list_images` skips them."""
    folder = Path(folder)
    skip = _inside(Path(exclude), folder) if exclude is not None else None
    if not folder.is_dir():
        raise NotADirectoryError(f"{folder}: not a directory")
    found: list[Path] = []
    pending = [folder]
    while pending:
        current = pending.pop()
        for entry in sorted(current.iterdir()):
            parts = entry.relative_to(folder).parts
            if entry.name.startswith(".") or _is_report_thumb(parts):
                continue
            if skip is not None and entry.resolve().is_relative_to(skip):
                continue
            if entry.is_dir():
                if is_dicom_series(entry):
                    found.append(entry)
                elif recursive:
                    pending.append(entry)
            elif entry.is_file() and is_nifti_path(entry):
                found.append(entry)
    return sorted(found)


def input_key(path: Path, folder: Path) -> str:
    """The pair key of ``path`` in ``folder``: its relative path without the extension (without ``.nii.gz`` for
    a NIfTI file; a series folder's whole name)."""
    relative = Path(path).relative_to(folder)
    if is_nifti_path(path) or Path(path).is_dir():
        return (relative.parent / volume_stem(path)).as_posix()
    return relative.with_suffix("").as_posix()


def input_stem(path: Path) -> str:
    """The name a single input pairs by (a pairs file's line, two files given): :func:`input_key` in its folder."""
    return volume_stem(path) if is_nifti_path(path) or Path(path).is_dir() else Path(path).stem


def _inside(exclude: Path, folder: Path) -> Path | None:
    """``exclude`` resolved when it lies strictly inside ``folder`` (a run's output in its input), else None."""
    skip, top = exclude.resolve(), folder.resolve()
    return skip if skip != top and skip.is_relative_to(top) else None


def index_by_key(
    folder: Path, recursive: bool = False, exclude: Path | None = None, volumes: bool = False
) -> tuple[dict[str, Path], dict[str, list[Path]]]:
    """Map pair key -> file, plus the keys that more than one file claims (``exclude``: see :func:`list_images`;
    ``volumes``: NIfTI files and DICOM series too, :func:`list_volumes`)."""
    seen: dict[str, list[Path]] = {}
    paths = list_images(folder, recursive, exclude)
    if volumes:
        found = list_volumes(folder, recursive, exclude)
        series = [p for p in found if p.is_dir()]
        paths = [p for p in paths if not any(p.is_relative_to(s) for s in series)] + found
    for path in paths:
        seen.setdefault(input_key(path, folder), []).append(path)
    unique = {k: v[0] for k, v in seen.items() if len(v) == 1}
    dupes = {k: v for k, v in seen.items() if len(v) > 1}
    return unique, dupes


def pair_folders(
    a_dir: Path, b_dir: Path, recursive: bool = False, exclude: Path | None = None, volumes: bool = False
) -> Pairing:
    """Match the images (with ``volumes``, NIfTI files and DICOM series too) of two folders by key (relative path
    without extension); nothing under ``exclude``.

    Raises:
        NotADirectoryError: either folder is missing.
    """
    a_index, a_dupes = index_by_key(Path(a_dir), recursive, exclude, volumes)
    b_index, b_dupes = index_by_key(Path(b_dir), recursive, exclude, volumes)
    result = Pairing()
    for key, paths in {**a_dupes, **b_dupes}.items():
        result.ambiguous[key] = sorted(set(paths + a_dupes.get(key, []) + b_dupes.get(key, [])))
    for key in sorted(a_index):
        if key in result.ambiguous:
            continue
        if key in b_index:
            result.pairs.append(Pair(key, a_index[key], b_index[key]))
        else:
            result.only_in_a.append(a_index[key])
    for key in sorted(b_index):
        if key not in a_index and key not in result.ambiguous:
            result.only_in_b.append(b_index[key])
    return result


def parse_pair_lines(lines, base: Path | None = None) -> list[Pair]:
    """Pairs from ``a_path<TAB>b_path`` lines (e.g. stdin). Blank lines and ``#`` comments are skipped.

    The key is the stem of the first path (:func:`input_stem`: a NIfTI file's without ``.nii.gz``). A stem seen before gets the first numeric suffix (``x_1``, ``x_2``...)
    that is neither another line's own stem nor an earlier key, so keys (and the output names made from them)
    are unique by construction, and a real ``x_1`` keeps its name.

    Raises:
        ValueError: a line without exactly two tab-separated fields (message gives the line number).
    """
    paths: list[tuple[Path, Path]] = []
    for number, line in enumerate(lines, start=1):
        line = line.rstrip("\n").rstrip("\r")
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        fields = line.split("\t")
        if len(fields) != 2:
            raise ValueError(f"pair list line {number}: expected 'a_path<TAB>b_path', got {line!r}")
        a, b = (Path(f.strip()) for f in fields)
        paths.append((base / a, base / b) if base is not None else (a, b))
    stems = {input_stem(a) for a, _ in paths}
    taken: set[str] = set()
    pairs: list[Pair] = []
    for a, b in paths:
        stem = input_stem(a)
        key, suffix = stem, 0
        while key in taken or (suffix and key in stems):
            suffix += 1
            key = f"{stem}_{suffix}"
        taken.add(key)
        pairs.append(Pair(key, a, b))
    return pairs
