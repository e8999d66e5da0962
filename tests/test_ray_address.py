"""`mmfuse run --engine ray --address HOST:PORT` with nothing listening there: one clear error within seconds
(``ray.init`` alone retries for minutes), naming the address; a real CLI process, a real refused port."""

import socket
import subprocess
import sys
import time

import pytest
from conftest import astronaut, camera, write_tiny_checkpoint

from mmfuse_cli.batch.engines import EngineError
from mmfuse_cli.io import to_gray, write_image

pytest.importorskip("ray")

CLI = [sys.executable, "-m", "mmfuse_cli"]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return write_tiny_checkpoint(tmp_path_factory.mktemp("ckpt"), seed=1, head_std=None)


def _refused_port() -> int:
    """A local TCP port nothing listens on (bound, then closed)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("address", ["127.0.0.1:1", "ray://127.0.0.1:{free}"])
def test_an_unreachable_ray_address_is_one_error_within_seconds(tmp_path, checkpoint, address):
    address = address.format(free=_refused_port())
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    write_image(a / "x.png", camera(32, 32), 8)
    write_image(b / "x.png", to_gray(astronaut(32, 32)), 8)
    args = [str(a), str(b), "-o", str(tmp_path / "out"), "--engine", "ray", "--address", address]
    start = time.monotonic()
    done = subprocess.run(
        [*CLI, "run", *args, "--model", str(checkpoint), "-q"], capture_output=True, text=True, timeout=90
    )
    seconds = time.monotonic() - start
    assert done.returncode == 2, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, done.stderr
    host_port = address.removeprefix("ray://")
    assert f"cannot reach the Ray cluster at {host_port}: connection refused" in lines[0]
    assert seconds < 30


def test_the_reachability_check_in_process(monkeypatch):
    from mmfuse_cli.batch import ray_engine

    with pytest.raises(EngineError, match=r"127\.0\.0\.1:1: connection refused"):
        ray_engine.check_reachable("127.0.0.1:1")
    with socket.socket() as server:  # something listening: no error
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        ray_engine.check_reachable(f"127.0.0.1:{port}")
        ray_engine.check_reachable(f"ray://127.0.0.1:{port}")
    for address in ("auto", "local", None, "", "no-port-here"):  # left to Ray
        ray_engine.check_reachable(address)

    def no_such_name(*args, **kw):  # what the resolver says of an unknown name (no test asks a name server)
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", no_such_name)
    with pytest.raises(EngineError, match=r"no-such-host\.invalid:6379: unknown host"):
        ray_engine.check_reachable("no-such-host.invalid:6379")
    # a name server that never answers: the wait is bounded too (getaddrinfo has no timeout of its own)
    monkeypatch.setattr(ray_engine, "CONNECT_TIMEOUT", 0.5)
    monkeypatch.setattr(socket, "getaddrinfo", lambda *args, **kw: time.sleep(30))
    start = time.monotonic()
    with pytest.raises(EngineError, match=r"at slow-dns\.example:6379: no answer within 0\.5 s"):
        ray_engine.check_reachable("slow-dns.example:6379")
    assert time.monotonic() - start < 5
    with pytest.raises(EngineError, match="port 70000 is out of range"):
        ray_engine.check_reachable("127.0.0.1:70000")
