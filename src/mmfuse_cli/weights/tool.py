"""Maintainer tool for the checkpoint manifest: ``python -m mmfuse_cli.weights.tool COMMAND``.

``register FILE``  compute sha256 + size of a checkpoint and write / update its entry in BOTH ``weights.toml``
                   (repository top level) and ``src/mmfuse_cli/weights.toml`` (shipped in the package), which are
                   kept byte-identical; or in one ``--manifest`` file (e.g. a user manifest).
``entry FILE``     print the ``[[checkpoint]]`` TOML of a file (to paste into a user manifest).
``check``          both copies identical, valid, and every bundled file present and matching (exit 1 if not).

Examples (from the repository root)::

    python -m mmfuse_cli.weights.tool register src/mmfuse_cli/checkpoints/drfusion-ivif-s.safetensors \\
        --name drfusion-ivif-s --task ivif --license MIT --default --description "..."
    python -m mmfuse_cli.weights.tool entry team-ivif.safetensors --name team-ivif \\
        --hub-repo my-org/mmfuse-checkpoints --revision <40-hex commit> --description "..." --license MIT
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TypedDict

from mmfuse_cli.files import atomic_write_text
from mmfuse_cli.tasks import TASKS
from mmfuse_cli.weights.errors import ManifestError, WeightsError
from mmfuse_cli.weights.manifest import (
    BUNDLED_DIR,
    PACKAGE,
    PACKAGE_MANIFEST,
    REPO_TYPES,
    CheckpointEntry,
    Manifest,
    load_manifest_file,
    parse_manifest,
)
from mmfuse_cli.weights.resolve import check_checkpoint_file, check_file, sha256_file

TOP_LEVEL_MANIFEST = "weights.toml"
PACKAGE_MANIFEST_REL = Path("src") / PACKAGE / PACKAGE_MANIFEST
BUNDLED_REL = Path("src") / PACKAGE / BUNDLED_DIR

DEFAULT_HEADER = """\
# mmfuse checkpoint manifest (schema 1). See docs/WEIGHTS.md.
#
# This file exists twice and both copies must stay byte-identical: weights.toml at the repository top level (for
# reviewers) and src/mmfuse_cli/weights.toml (shipped in the package; the one read at run time). Do not edit the
# sha256/size by hand: python -m mmfuse_cli.weights.tool register FILE --name NAME --task TASK ...
#
# [defaults] maps a task (ivif, mif) to the checkpoint name used when --model is not given.
# Each [[checkpoint]] has: name, task, description, license, source, sha256, size, and
#   source = "bundled"  file = "<name>.safetensors"   (inside mmfuse_cli/checkpoints/)
#   source = "hub"      repo_id = "org/repo", filename = "...", revision = "<40-hex commit>"
#   source = "local"    path = "/abs/or/relative/to/this/file.safetensors"   (user manifests)"""


def leading_comments(text: str) -> str:
    """The comment block at the top of a manifest (kept when the file is rewritten)."""
    lines: list[str] = []
    for line in text.splitlines():
        if line.startswith("#") or (not line.strip() and lines):
            lines.append(line)
        else:
            break
    return "\n".join(lines).rstrip()


class _CommonFields(TypedDict):
    """The :class:`CheckpointEntry` fields every source kind takes (see :func:`build_entry`)."""

    name: str
    task: str
    description: str
    license: str
    sha256: str
    size: int


def build_entry(args: argparse.Namespace, file: Path, existing: CheckpointEntry | None) -> CheckpointEntry:
    """The entry for ``file`` from the command-line options (falling back to an existing entry's text)."""
    meta = check_checkpoint_file(file, args.task)
    task = args.task or meta["task"]
    description = (
        args.description if args.description is not None else (existing.description if existing else "")
    )
    license_ = args.license if args.license is not None else (existing.license if existing else "")
    if not description:
        raise WeightsError("--description is required for a new entry")
    if not license_:
        raise WeightsError("--license is required for a new entry")
    common: _CommonFields = {
        "name": args.name or file.stem,
        "task": task,
        "description": description,
        "license": license_,
        "sha256": sha256_file(file),
        "size": file.stat().st_size,
    }
    if args.hub_repo:
        if not args.revision:
            raise WeightsError("--hub-repo needs --revision (the 40-hex commit that holds the file)")
        return CheckpointEntry(
            source="hub", repo_id=args.hub_repo, filename=args.filename or file.name, revision=args.revision,
            repo_type=args.repo_type, **common,
        )  # fmt: skip
    if args.local:
        return CheckpointEntry(source="local", path=str(file.resolve()), **common)
    return CheckpointEntry(source="bundled", file=file.name, **common)


def _validate(entry: CheckpointEntry, origin: str) -> CheckpointEntry:
    """Round-trip the entry through the parser so the tool never writes what the loader would reject."""
    parsed = parse_manifest(entry.as_toml(), origin)
    return parsed.entries[entry.name]


def cmd_register(args: argparse.Namespace) -> int:
    """Write / update an entry in the package manifests (or in ``--manifest``)."""
    file = Path(args.file)
    root = Path(args.root)
    if args.manifest:
        targets = [Path(args.manifest)]
    else:
        targets = [root / PACKAGE_MANIFEST_REL, root / TOP_LEVEL_MANIFEST]
        if args.local:
            raise WeightsError("--local entries belong in a user manifest: pass --manifest PATH")
        if not (args.hub_repo or args.local):
            bundled = (root / BUNDLED_REL).resolve()
            if file.resolve().parent != bundled:
                raise WeightsError(f"{file}: a bundled checkpoint must be in {bundled} (copy it there first)")
    source = targets[0]
    if source.is_file():
        text = source.read_text(encoding="utf-8")
        manifest = load_manifest_file(source)
        header = leading_comments(text)
    elif args.manifest:
        manifest, header = (
            Manifest(files=[str(source)]),
            "# mmfuse user checkpoint manifest (see docs/WEIGHTS.md)",
        )
    else:
        raise ManifestError(f"{source}: not found (run from the repository root or pass --root)")
    name = args.name or file.stem
    entry = _validate(build_entry(args, file, manifest.entries.get(name)), str(source))
    manifest.entries[entry.name] = entry
    if args.default:
        manifest.defaults[entry.task] = entry.name
    manifest.check_defaults()
    out = manifest.to_toml(header or DEFAULT_HEADER)
    parse_manifest(out, str(source))  # never write a manifest the loader cannot read
    for target in targets:
        target.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(target, out)
        print(
            f"{target}: {entry.name} ({entry.task}, {entry.source}) sha256={entry.sha256} size={entry.size}"
        )
    return 0


def cmd_entry(args: argparse.Namespace) -> int:
    """Print the TOML entry of a file."""
    file = Path(args.file)
    entry = _validate(build_entry(args, file, None), "<entry>")
    sys.stdout.write(entry.as_toml())
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    """Both manifest copies identical and valid; every bundled entry present and matching."""
    root = Path(args.root)
    package, top = root / PACKAGE_MANIFEST_REL, root / TOP_LEVEL_MANIFEST
    problems: list[str] = []
    if package.read_bytes() != top.read_bytes():
        problems.append(f"{top} and {package} differ (they must be identical)")
    manifest = load_manifest_file(package)
    manifest.check_defaults()
    for entry in manifest.entries.values():
        if entry.source != "bundled":
            continue
        path = root / BUNDLED_REL / entry.file
        try:
            if not path.is_file():
                raise WeightsError(f"checkpoint '{entry.name}': {path} is missing")
            check_file(entry, path)
            check_checkpoint_file(path, entry.task)
            print(f"ok  {entry.name}  {path}")
        except WeightsError as exc:
            problems.append(str(exc))
    for problem in problems:
        print(f"error: {problem}", file=sys.stderr)
    return 1 if problems else 0


def build_parser() -> argparse.ArgumentParser:
    """The argparse parser of the tool."""
    parser = argparse.ArgumentParser(
        prog="python -m mmfuse_cli.weights.tool", description=__doc__.split("\n")[0]
    )
    sub = parser.add_subparsers(dest="command", required=True)

    def entry_options(p: argparse.ArgumentParser) -> None:
        p.add_argument("file", help="The .safetensors checkpoint.")
        p.add_argument("--name", help="Entry name (default: the file stem).")
        p.add_argument("--task", choices=TASKS, help="Task (default: from the file's metadata).")
        p.add_argument("--description", help="One-line description (required for a new entry).")
        p.add_argument("--license", help="License of the weights (required for a new entry).")
        p.add_argument("--hub-repo", help="Make a hub entry: the Hub repo_id (org/name) holding the file.")
        p.add_argument("--revision", help="Hub entry: the 40-hex commit id holding the file.")
        p.add_argument("--filename", help="Hub entry: path of the file in the repo (default: the file name).")
        p.add_argument("--repo-type", default="model", choices=REPO_TYPES)
        p.add_argument("--local", action="store_true", help="Make a local entry (absolute path of FILE).")

    reg = sub.add_parser("register", help="Write/update an entry in both package manifests (or --manifest).")
    entry_options(reg)
    reg.add_argument("--default", action="store_true", help="Also make it the default for its task.")
    reg.add_argument("--root", default=".", help="Repository root (default: current folder).")
    reg.add_argument("--manifest", help="Write this one manifest file instead (e.g. a user manifest).")
    reg.set_defaults(func=cmd_register)

    ent = sub.add_parser("entry", help="Print the [[checkpoint]] TOML of a file.")
    entry_options(ent)
    ent.set_defaults(func=cmd_entry)

    chk = sub.add_parser("check", help="Manifests identical and valid, bundled files present and matching.")
    chk.add_argument("--root", default=".", help="Repository root (default: current folder).")
    chk.set_defaults(func=cmd_check)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit code (0 ok, 1 check failed, 2 usage / invalid input)."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except WeightsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
