"""A tiny imitation of the Hugging Face Hub ``resolve`` endpoint on 127.0.0.1, for download tests.

``HEAD|GET /{repo_id}/resolve/{revision}/{filename}`` answers like the Hub does for a file at a commit:

* ``X-Repo-Commit`` (the commit), ``ETag`` / ``X-Linked-Etag`` (the sha256, as for LFS files), ``Content-Length``
  / ``X-Linked-Size``, ``Accept-Ranges: bytes``; ``Range: bytes=N-`` requests get ``206`` + ``Content-Range``;
* with ``redirect=True`` the resolve URL answers ``302`` with ``Location`` on a second "CDN" server (another
  origin, so the client takes the metadata from the redirect itself, as with the real Hub's LFS files);
* an unknown file -> ``404`` + ``X-Error-Code: EntryNotFound``, unknown revision -> ``404 RevisionNotFound``,
  unknown repo -> ``401 RepoNotFound``.

Per-file faults: ``truncate`` (GET sends the headers for the full body, then a part of it, then closes; a resumed
``Range`` request gets nothing), ``truncate_once`` (only the first GET is cut; resuming works), ``short``
(HEAD announces the full size, GET delivers a smaller complete body). Every request is recorded in ``requests``.
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote


@dataclass
class HostedFile:
    """A file served at ``repo_id@revision/filename`` with an optional fault."""

    content: bytes
    fault: str = ""
    gets: int = 0

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.content).hexdigest()


@dataclass
class FakeHub:
    """The two servers (hub + CDN) and their shared state. Use as a context manager."""

    redirect: bool = False
    files: dict[tuple[str, str, str], HostedFile] = field(default_factory=dict)
    requests: list[tuple[str, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._servers = [self._make_server(cdn=False), self._make_server(cdn=True)]
        self._threads: list[threading.Thread] = []

    # -- setup -------------------------------------------------------------------------------------------------

    def add(
        self, repo_id: str, filename: str, content: bytes, revision: str | None = None, fault: str = ""
    ) -> str:
        """Host ``content``; returns the 40-hex revision (derived from the content unless given)."""
        revision = revision or hashlib.sha1(repo_id.encode() + filename.encode() + content).hexdigest()
        self.files[(repo_id, revision, filename)] = HostedFile(content, fault)
        return revision

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self._servers[0].server_address[1]}"

    @property
    def cdn(self) -> str:
        return f"http://127.0.0.1:{self._servers[1].server_address[1]}"

    def count(self, method: str | None = None) -> int:
        """Number of requests received (of ``method`` if given), both servers together."""
        with self._lock:
            return sum(1 for m, _ in self.requests if method is None or m == method)

    def reset(self) -> None:
        with self._lock:
            self.requests.clear()

    def start(self) -> FakeHub:
        for server in self._servers:
            thread = threading.Thread(
                target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
            )
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> None:
        for server in self._servers:
            server.shutdown()
            server.server_close()
        for thread in self._threads:
            thread.join(timeout=5)

    def __enter__(self) -> FakeHub:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- serving -----------------------------------------------------------------------------------------------

    def _make_server(self, cdn: bool) -> ThreadingHTTPServer:
        hub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - silence the server
                pass

            def do_HEAD(self) -> None:  # noqa: N802 - http.server API
                self._handle(head=True)

            def do_GET(self) -> None:  # noqa: N802 - http.server API
                self._handle(head=False)

            def _send(
                self, status: int, headers: dict[str, str], body: bytes = b"", head: bool = False
            ) -> None:
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                if "Content-Length" not in headers:
                    self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if not head and body:
                    self.wfile.write(body)

            def _handle(self, head: bool) -> None:
                with hub._lock:
                    hub.requests.append((self.command, self.path))
                if cdn:
                    return self._serve_cdn(head)
                parts = unquote(self.path.split("?")[0]).lstrip("/").split("/")
                if len(parts) < 5 or parts[2] != "resolve":
                    return self._send(404, {"X-Error-Code": "EntryNotFound"}, b"not found", head)
                repo_id, revision, filename = "/".join(parts[:2]), parts[3], "/".join(parts[4:])
                if not any(key[0] == repo_id for key in hub.files):
                    return self._send(401, {"X-Error-Code": "RepoNotFound", "X-Error-Message": "Repository not found"},
                                      b"repo not found", head)  # fmt: skip
                if not any(key[:2] == (repo_id, revision) for key in hub.files):
                    return self._send(404, {"X-Error-Code": "RevisionNotFound", "X-Error-Message": "Invalid rev id"},
                                      b"revision not found", head)  # fmt: skip
                hosted = hub.files.get((repo_id, revision, filename))
                if hosted is None:
                    return self._send(404, {"X-Error-Code": "EntryNotFound", "X-Error-Message": "Entry not found",
                                            "X-Repo-Commit": revision}, b"entry not found", head)  # fmt: skip
                meta = {
                    "X-Repo-Commit": revision,
                    "X-Linked-Etag": f'"{hosted.sha256}"',
                    "X-Linked-Size": str(len(hosted.content)),
                }
                if hub.redirect:
                    location = f"{hub.cdn}/cdn/{repo_id}/{revision}/{filename}"
                    return self._send(302, {**meta, "Location": location}, b"", head)
                self._serve_body(hosted, {**meta, "ETag": f'"{hosted.sha256}"'}, head)

            def _serve_cdn(self, head: bool) -> None:
                parts = unquote(self.path.split("?")[0]).lstrip("/").split("/")
                hosted = None
                if len(parts) >= 5 and parts[0] == "cdn":
                    hosted = hub.files.get(("/".join(parts[1:3]), parts[3], "/".join(parts[4:])))
                if hosted is None:
                    return self._send(404, {}, b"no such blob", head)
                self._serve_body(hosted, {"ETag": f'"{hosted.sha256}"'}, head)

            def _serve_body(self, hosted: HostedFile, headers: dict[str, str], head: bool) -> None:
                content = hosted.content
                base = {**headers, "Accept-Ranges": "bytes", "Content-Type": "application/octet-stream"}
                if head:
                    return self._send(200, {**base, "Content-Length": str(len(content))}, b"", head=True)
                with hub._lock:
                    hosted.gets += 1
                    first = hosted.gets == 1
                start = 0
                range_header = self.headers.get("Range", "")
                if range_header.startswith("bytes=") and range_header[6:].split("-")[0].isdigit():
                    start = int(range_header[6:].split("-")[0])
                body = content[start:]
                status = 206 if start else 200
                if start:
                    base["Content-Range"] = f"bytes {start}-{len(content) - 1}/{len(content)}"
                if hosted.fault == "short":
                    body = body[: len(body) // 2]
                    return self._send(status, base, body)
                if hosted.fault == "truncate" or (hosted.fault == "truncate_once" and first):
                    # Announce the full body, send part of it (nothing on a resumed request), then hang up.
                    self.send_response(status)
                    for key, value in {**base, "Content-Length": str(len(body))}.items():
                        self.send_header(key, value)
                    self.send_header("Connection", "close")
                    self.end_headers()
                    if not start:
                        self.wfile.write(body[: len(body) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    return None
                return self._send(status, base, body)

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        return server
