"""``mmfuse weights list | pull NAME | verify [NAME|PATH] | path NAME``: the checkpoint manifest and cache.

Data (tables, paths, JSON Lines) go to stdout, messages to stderr. Exit codes: 0 ok, 1 a verification or
download failed, 2 usage error (unknown name, invalid manifest).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from mmfuse_cli.results.console import report_error, report_warning, stderr_console
from mmfuse_cli.results.rows import EXIT_ITEMS_FAILED, EXIT_OK, EXIT_USAGE, json_line
from mmfuse_cli.weights.errors import WeightsError
from mmfuse_cli.weights.hub import hub_cache_dir, hub_endpoint, is_offline
from mmfuse_cli.weights.manifest import Manifest, bundled_dir, get_entry, load_manifest
from mmfuse_cli.weights.resolve import (
    EntryStatus,
    check_checkpoint_file,
    describe_checkpoint_file,
    fetch_entry,
    human_size,
    looks_like_path,
    unregistered_message,
    verify_entry,
)

weights_app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    help="Checkpoints: list the manifest, download (pull), verify sha256, print local paths.",
)


def _load(console: Any) -> Manifest:
    try:
        return load_manifest()
    except WeightsError as exc:
        report_error(console, str(exc))
        raise typer.Exit(exc.exit_code) from None


def _status_text(status: EntryStatus) -> str:
    if status.state == "verified":
        return "cached+verified" if status.entry.source == "hub" else "present+verified"
    return status.state


def _row(status: EntryStatus, manifest: Manifest) -> dict[str, Any]:
    entry = status.entry
    row: dict[str, Any] = {
        "name": entry.name,
        "task": entry.task,
        "default": manifest.defaults.get(entry.task) == entry.name,
        "source": entry.source,
        "status": _status_text(status),
        "size": entry.size,
        "sha256": entry.sha256,
        "license": entry.license,
        "description": entry.description,
        "path": str(status.path) if status.path else "",
        "manifest": entry.manifest,
    }
    if entry.source == "hub":
        row.update(
            repo_id=entry.repo_id, filename=entry.filename, revision=entry.revision, repo_type=entry.repo_type
        )
    if status.actual:
        row["actual"] = status.actual
    return row


def _table(rows: list[list[str]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows
    )


def list_command(
    json_out: bool = typer.Option(False, "--json", help="One JSON object per checkpoint on stdout."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No summary lines on stderr."),
) -> None:
    """Every checkpoint of the manifests, with its task, source, size and local status (hashes present files)."""
    console = stderr_console(quiet)
    manifest = _load(console)
    statuses = [verify_entry(entry) for entry in manifest.entries.values()]
    if json_out:
        for status in statuses:
            print(json_line(_row(status, manifest)))
    else:
        rows = [["NAME", "TASK", "DEFAULT", "SOURCE", "SIZE", "STATUS"]]
        for status in statuses:
            entry = status.entry
            rows.append([
                entry.name,
                entry.task,
                "*" if manifest.defaults.get(entry.task) == entry.name else "",
                entry.source_label(),
                human_size(entry.size) if entry.size else "?",
                _status_text(status),
            ])  # fmt: skip
        print(_table(rows))
    if not quiet:
        offline = " (offline: HF_HUB_OFFLINE)" if is_offline() else ""
        console.print(f"manifests: {' + '.join(manifest.files)}", soft_wrap=True)
        console.print(f"hub cache: {hub_cache_dir()}; endpoint: {hub_endpoint() or 'https://huggingface.co'}{offline}",
                      soft_wrap=True)  # fmt: skip
    for status in statuses:
        if status.state == "CORRUPT":
            report_warning(console, f"'{status.entry.name}' is CORRUPT ({status.path}): expected sha256 "
                                    f"{status.entry.sha256}, got {status.actual}")  # fmt: skip
    raise typer.Exit(EXIT_OK)


def pull(
    names: list[str] = typer.Argument(
        ..., metavar="NAME...", help="Checkpoint name(s) from `mmfuse weights list`."
    ),
    force: bool = typer.Option(False, "--force", help="Download again even if a verified copy is cached."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar or summary lines."),
) -> None:
    """Download (hub) and verify checkpoints into the local cache; print each verified path on stdout."""
    console = stderr_console(quiet)
    manifest = _load(console)
    code = EXIT_OK
    for name in names:
        try:
            entry = get_entry(name, manifest)
            path = fetch_entry(entry, progress=not quiet, force_download=force)
        except WeightsError as exc:
            report_error(console, str(exc))
            code = max(code, exc.exit_code)
            continue
        print(path, flush=True)
        if not quiet:
            console.print(
                f"{name}: verified sha256 {entry.sha256[:12]}… ({human_size(entry.size)})", soft_wrap=True
            )
    raise typer.Exit(code)


def _verify_path(path: Path, manifest: Manifest, json_out: bool, console: Any) -> int:
    try:
        info = describe_checkpoint_file(path)
        check_checkpoint_file(path)
    except WeightsError as exc:
        report_error(console, str(exc))
        return EXIT_ITEMS_FAILED
    matches = [e.name for e in manifest.entries.values() if e.sha256 == info["sha256"]]
    info["matches"] = matches
    if json_out:
        print(json_line({k: v for k, v in info.items() if k != "config"}))
    else:
        print(f"ok  {path}  task={info['task']}  size={info['size']}  sha256={info['sha256']}")
        if matches and not console.quiet:
            console.print(f"matches manifest entry: {', '.join(matches)}", soft_wrap=True)
    return EXIT_OK


def verify(
    name: str | None = typer.Argument(
        None, metavar="[NAME|PATH]", help="A checkpoint name or file (default: all)."
    ),
    json_out: bool = typer.Option(False, "--json", help="One JSON object per checkpoint on stdout."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Only errors."),
) -> None:
    """Re-hash local checkpoint files against the manifest (no network). Exit 1 if any is corrupt or missing.

    Without NAME every entry is checked and hub checkpoints not downloaded yet are skipped; with NAME the
    checkpoint must be present. A PATH is checked to be an mmfuse safetensors checkpoint, its sha256 printed.
    """
    console = stderr_console(quiet)
    manifest = _load(console)
    if name is not None and looks_like_path(name):
        raise typer.Exit(_verify_path(Path(name).expanduser(), manifest, json_out, console))
    if name is not None:
        try:
            entries = [get_entry(name, manifest)]
        except WeightsError as exc:
            report_error(console, str(exc))
            raise typer.Exit(exc.exit_code) from None
    else:
        entries = list(manifest.entries.values())
    code = EXIT_OK
    for entry in entries:
        status = verify_entry(entry)
        failed = status.failed or (name is not None and not status.ok)
        if json_out:
            print(json_line(_row(status, manifest)))
        elif not quiet or failed:
            label = "ok" if status.ok else ("FAIL" if failed else "skip")
            print(f"{label:<4}  {entry.name}  {_status_text(status)}  {status.path or entry.source_label()}")
        if failed:
            code = EXIT_ITEMS_FAILED
            report_error(console, _failure_message(status))
    raise typer.Exit(code)


def _failure_message(status: EntryStatus) -> str:
    entry = status.entry
    if status.state == "CORRUPT":
        fix = f"; run `mmfuse weights pull {entry.name} --force`" if entry.source == "hub" else ""
        return f"'{entry.name}' ({status.path}): sha256 mismatch: expected {entry.sha256}, got {status.actual}{fix}"
    if status.state == "not downloaded":
        return f"'{entry.name}' is not downloaded yet: run `mmfuse weights pull {entry.name}`"
    if status.state == "unregistered":
        return unregistered_message(entry)
    where = bundled_dir() / entry.file if entry.source == "bundled" else entry.path
    return f"'{entry.name}': file {where} is missing"


def path(
    name: str = typer.Argument(..., metavar="NAME|PATH", help="A checkpoint name (or a file, printed back)."),
) -> None:
    """Print the verified local file of a checkpoint on stdout (no download: use `pull` for that)."""
    console = stderr_console(False)
    manifest = _load(console)
    if looks_like_path(name):
        file = Path(name).expanduser()
        if not file.is_file():
            report_error(console, f"{file}: no such checkpoint file")
            raise typer.Exit(EXIT_USAGE)
        print(file.resolve())
        raise typer.Exit(EXIT_OK)
    try:
        status = verify_entry(get_entry(name, manifest))
    except WeightsError as exc:
        report_error(console, str(exc))
        raise typer.Exit(exc.exit_code) from None
    if not status.ok:
        report_error(console, _failure_message(status))
        raise typer.Exit(EXIT_ITEMS_FAILED)
    print(status.path)
    raise typer.Exit(EXIT_OK)


weights_app.command("list", help="List checkpoints: task, default, source, size, local status.")(list_command)
weights_app.command("pull", help="Download + verify checkpoints; print their paths.")(pull)
weights_app.command("verify", help="Re-hash local checkpoint files (exit 1 on mismatch).")(verify)
weights_app.command("path", help="Print the verified local path of a checkpoint.")(path)
