"""Checkpoint manifest, verification and downloads (issue 4).

Hub downloads run against ``tests/hubserver.py``: a real HTTP server on 127.0.0.1 that imitates the Hub's
``resolve`` endpoint. ``HF_HOME`` is a temporary folder and ``HF_ENDPOINT`` points at 127.0.0.1 in every test, so
no test can reach the internet or the user's cache.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from hubserver import FakeHub
from safetensors.numpy import save_file
from typer.testing import CliRunner

from mmfuse_cli.cli import app
from mmfuse_cli.model.checkpoint import CHECKPOINT_FORMAT
from mmfuse_cli.tasks import TASKS
from mmfuse_cli.weights import tool as weights_tool
from mmfuse_cli.weights.errors import (
    ChecksumMismatchError,
    DownloadError,
    ManifestError,
    NotDownloadedError,
    NotRegisteredError,
    UnknownCheckpointError,
    WeightsError,
)
from mmfuse_cli.weights.manifest import (
    ENV_USER_MANIFEST,
    default_model_for,
    get_entry,
    list_entries,
    load_manifest,
    package_manifest_text,
    parse_manifest,
)
from mmfuse_cli.weights.resolve import (
    check_checkpoint_file,
    describe_checkpoint_file,
    fetch_entry,
    pull,
    resolve_checkpoint,
    verify_entry,
)

REPO_ROOT = Path(__file__).resolve().parents[1]
REPO = "team/mmfuse-ckpts"


# --------------------------------------------------------------------------------------------------- helpers


def make_checkpoint(
    path: Path, task: str = "ivif", seed: int = 0, extra: dict[str, str] | None = None
) -> Path:
    """A tiny but real mmfuse safetensors checkpoint."""
    rng = np.random.default_rng(seed)
    tensors = {
        "conv.weight": rng.standard_normal((4, 2, 3, 3)).astype(np.float32),
        "conv.bias": np.zeros(4, np.float32),
    }
    metadata = {"format": CHECKPOINT_FORMAT, "task": task, "config": json.dumps({"width": 4, "seed": seed})}
    metadata.update(extra or {})
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(path), metadata=metadata)
    return path


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def hub_entry(name: str, revision: str, data: bytes, filename: str = "model.safetensors", task: str = "ivif",
              repo: str = REPO) -> str:  # fmt: skip
    return (
        f'[[checkpoint]]\nname = "{name}"\ntask = "{task}"\ndescription = "test"\nlicense = "MIT"\nsource = "hub"\n'
        f'repo_id = "{repo}"\nfilename = "{filename}"\nrevision = "{revision}"\nsha256 = "{sha(data)}"\n'
        f"size = {len(data)}\n"
    )


def local_entry(name: str, path: Path, data: bytes | None = None, task: str = "ivif") -> str:
    data = path.read_bytes() if data is None else data
    return (
        f'[[checkpoint]]\nname = "{name}"\ntask = "{task}"\nsource = "local"\npath = "{path.as_posix()}"\n'
        f'sha256 = "{sha(data)}"\nsize = {len(data)}\n'
    )


def cache_files(root: Path) -> list[Path]:
    """Every file (or link) under the hub cache's blobs/ and snapshots/ folders."""
    return [
        p
        for p in root.rglob("*")
        if (p.is_file() or p.is_symlink()) and ("blobs" in p.parts or "snapshots" in p.parts)
    ]


# --------------------------------------------------------------------------------------------------- fixtures


@pytest.fixture(autouse=True)
def hermetic_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Private HF cache and config dir; endpoint on a dead local port; no offline flag; no real sleeping.

    Name resolution of anything but the loopback address fails (and fails the test): no test reaches the internet.
    """
    blocked: list[str] = []
    real_getaddrinfo = socket.getaddrinfo

    def loopback_only(host, *args, **kwargs):
        if host not in ("127.0.0.1", "localhost", "::1"):
            blocked.append(str(host))
            raise socket.gaierror(socket.EAI_NONAME, f"test: network access to {host} is blocked")
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", loopback_only)
    # huggingface_hub 2.x fetches an "agent harness" list from its import-time endpoint (huggingface.co) when it
    # builds request headers; give it an empty list up front so it never tries.
    # Offline mode is read from the environment once, when huggingface_hub is imported: undo a value inherited
    # from the shell (the offline tests set HF_HUB_OFFLINE, which mmfuse reads at every call).
    from huggingface_hub import constants as hf_constants

    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", False)
    try:
        from huggingface_hub.utils import _detect_agent

        monkeypatch.setattr(_detect_agent, "_registry", _detect_agent._EMPTY_REGISTRY)
    except (ImportError, AttributeError):
        pass
    for var in (
        "HF_HUB_CACHE",
        "HUGGINGFACE_HUB_CACHE",
        "HF_HUB_OFFLINE",
        "TRANSFORMERS_OFFLINE",
        ENV_USER_MANIFEST,
    ):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv(
        "HF_ENDPOINT", "http://127.0.0.1:9"
    )  # discard port: nothing listens, never the internet
    monkeypatch.setenv("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    monkeypatch.setattr(time, "sleep", lambda seconds: None)  # huggingface_hub's retry back-off
    yield tmp_path
    assert not blocked, f"a test tried to reach {blocked}"


@pytest.fixture
def no_package_entries(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only the user manifest's entries (independent of the bundled checkpoints' state)."""
    monkeypatch.setattr("mmfuse_cli.weights.manifest.package_manifest_text", lambda: "schema = 1\n")


@pytest.fixture
def user_manifest(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """``write(text)`` writes the user manifest named by $MMFUSE_WEIGHTS_MANIFEST."""
    path = tmp_path / "user" / "weights.toml"

    def write(text: str) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        monkeypatch.setenv(ENV_USER_MANIFEST, str(path))
        return path

    return write


@pytest.fixture(params=[False, True], ids=["direct", "lfs-redirect"])
def hub(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch):
    """A running fake Hub (plain 200, or 302 to a CDN origin like LFS files) with HF_ENDPOINT pointing at it."""
    with FakeHub(redirect=request.param) as server:
        monkeypatch.setenv("HF_ENDPOINT", server.endpoint)
        yield server


@pytest.fixture
def plain_hub(monkeypatch: pytest.MonkeyPatch):
    with FakeHub() as server:
        monkeypatch.setenv("HF_ENDPOINT", server.endpoint)
        yield server


@pytest.fixture
def ckpt_bytes(tmp_path: Path) -> bytes:
    return make_checkpoint(tmp_path / "src" / "ckpt.safetensors", seed=1).read_bytes()


# --------------------------------------------------------------------------------------------------- the shipped manifest


def test_manifest_copies_are_identical():
    shipped = package_manifest_text()
    assert (REPO_ROOT / "weights.toml").read_text(encoding="utf-8") == shipped
    assert (REPO_ROOT / "src" / "mmfuse_cli" / "weights.toml").read_text(encoding="utf-8") == shipped


def test_shipped_manifest_is_valid_with_bundled_defaults():
    manifest = load_manifest(include_user=False)
    for task in TASKS:
        name = default_model_for(task, manifest)
        entry = manifest.entries[name]
        assert entry.task == task
        assert entry.source == "bundled"


def test_bundled_checkpoints_present_and_verified():
    """What a fresh install must show: every bundled entry registered, present, verified (also via the CLI)."""
    manifest = load_manifest(include_user=False)
    bundled = [e for e in manifest.entries.values() if e.source == "bundled"]
    assert bundled
    hint = (
        "run: python -m mmfuse_cli.weights.tool register src/mmfuse_cli/checkpoints/<name>.safetensors "
        "--name <name> --task <task> --default --license ... --description ..."
    )
    for entry in bundled:
        assert entry.registered, f"{entry.name} has no sha256 yet; {hint}"
        path = fetch_entry(entry, offline=True)
        check_checkpoint_file(path, entry.task)
    result = CliRunner().invoke(app, ["weights", "list", "--json", "-q"])
    assert result.exit_code == 0, result.output
    rows = {row["name"]: row for row in map(json.loads, result.stdout.splitlines())}
    for entry in bundled:
        assert rows[entry.name]["status"] == "present+verified"
    for task in TASKS:
        assert rows[manifest.defaults[task]]["default"] is True


# --------------------------------------------------------------------------------------------------- parsing


GOOD_HUB = (
    'name = "x"\ntask = "ivif"\nsource = "hub"\nrepo_id = "a/b"\nfilename = "f"\nrevision = "'
    + "a" * 40
    + '"\n'
)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("[[checkpoint]\n", "invalid TOML"),
        ("colour = 1\n", "unknown top-level key"),
        ("schema = 7\n", "schema"),
        (
            "[[checkpoint]]\n" + GOOD_HUB + 'sha256 = "' + "0" * 64 + '"\nsize = 1\nextra = 1\n',
            "unknown key(s) extra",
        ),
        (
            "[[checkpoint]]\n" + GOOD_HUB.replace('"ivif"', '"video"') + 'sha256 = "' + "0" * 64 + '"\n',
            "task must be",
        ),
        (
            "[[checkpoint]]\n" + GOOD_HUB.replace("a" * 40, "main") + 'sha256 = "' + "0" * 64 + '"\n',
            "40-hex commit",
        ),
        ("[[checkpoint]]\n" + GOOD_HUB, "needs its sha256"),
        ("[[checkpoint]]\n" + GOOD_HUB + 'sha256 = "xyz"\n', "64 hex"),
        ("[[checkpoint]]\n" + GOOD_HUB + 'sha256 = "' + "0" * 64 + '"\nsize = -1\n', "size"),
        (("[[checkpoint]]\n" + GOOD_HUB + 'sha256 = "' + "0" * 64 + '"\n') * 2, "defined twice"),
        ('[[checkpoint]]\nname = "x"\ntask = "ivif"\nsource = "ftp"\n', "source must be"),
        (
            '[[checkpoint]]\nname = "x"\ntask = "ivif"\nsource = "bundled"\nfile = "../x.safetensors"\n',
            "bare file name",
        ),
        ('[defaults]\nivif = "nope"\n', "not an entry"),
        (
            '[defaults]\nmif = "x"\n[[checkpoint]]\n' + GOOD_HUB + 'sha256 = "' + "0" * 64 + '"\n',
            "'ivif' checkpoint",
        ),
    ],
)
def test_invalid_user_manifest_names_the_file(text, fragment, user_manifest, no_package_entries):
    path = user_manifest(text)
    with pytest.raises(ManifestError) as info:
        load_manifest()
    message = str(info.value)
    assert str(path) in message and fragment in message
    assert "\n" not in message
    assert info.value.exit_code == 2


def test_env_manifest_must_exist(tmp_path, monkeypatch):
    monkeypatch.setenv(ENV_USER_MANIFEST, str(tmp_path / "nope.toml"))
    with pytest.raises(ManifestError, match="does not exist"):
        load_manifest()


def test_user_manifest_adds_entries_and_overrides_defaults(tmp_path, user_manifest):
    ckpt = make_checkpoint(tmp_path / "user" / "mine.safetensors", seed=3)
    user_manifest(
        local_entry("mine", Path("mine.safetensors"), ckpt.read_bytes()) + '[defaults]\nivif = "mine"\n'
    )
    manifest = load_manifest()
    assert default_model_for("ivif", manifest) == "mine"
    assert "drfusion-mif-s" in manifest.entries  # the package entries are still there
    assert manifest.entries["mine"].path == str(ckpt)  # relative to the manifest's folder
    assert resolve_checkpoint(None, task="ivif") == ckpt
    assert resolve_checkpoint("mine") == ckpt


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="XDG config dir is the Linux location")
def test_user_manifest_in_config_dir(tmp_path, no_package_entries):
    ckpt = make_checkpoint(tmp_path / "a.safetensors")
    config = tmp_path / "config" / "mmfuse" / "weights.toml"
    config.parent.mkdir(parents=True)
    config.write_text(local_entry("cfg", ckpt), encoding="utf-8")
    assert [e.name for e in list_entries()] == ["cfg"]


def test_unknown_name_is_a_usage_error(no_package_entries):
    with pytest.raises(UnknownCheckpointError, match="unknown checkpoint 'nope'") as info:
        resolve_checkpoint("nope")
    assert info.value.exit_code == 2


# --------------------------------------------------------------------------------------------------- local files


def test_path_is_returned_as_is(tmp_path):
    ckpt = make_checkpoint(tmp_path / "m.safetensors", task="mif")
    assert resolve_checkpoint(str(ckpt)) == ckpt
    assert resolve_checkpoint(ckpt, task="mif") == ckpt
    with pytest.raises(WeightsError, match="'mif' checkpoint, not 'ivif'"):
        resolve_checkpoint(ckpt, task="ivif")
    with pytest.raises(WeightsError, match="no such checkpoint file"):
        resolve_checkpoint(str(tmp_path / "missing.safetensors"))
    not_st = tmp_path / "x.safetensors"
    not_st.write_bytes(b"\x80\x04pickle")
    with pytest.raises(WeightsError, match="not a readable safetensors file"):
        resolve_checkpoint(not_st, task="ivif")


def test_tampered_local_file_is_refused(tmp_path, user_manifest, no_package_entries):
    ckpt = make_checkpoint(tmp_path / "m.safetensors")
    good = ckpt.read_bytes()
    user_manifest(local_entry("m", ckpt))
    assert resolve_checkpoint("m") == ckpt
    tampered = bytearray(good)
    tampered[-1] ^= 0xFF
    ckpt.write_bytes(bytes(tampered))
    with pytest.raises(ChecksumMismatchError) as info:
        resolve_checkpoint("m")
    assert sha(good) in str(info.value) and sha(bytes(tampered)) in str(info.value)
    assert info.value.expected == sha(good)


def test_unregistered_entry_is_never_loaded(tmp_path, user_manifest, no_package_entries):
    ckpt = make_checkpoint(tmp_path / "m.safetensors")
    user_manifest(
        f'[[checkpoint]]\nname = "m"\ntask = "ivif"\nsource = "local"\npath = "{ckpt.as_posix()}"\nsha256 = ""\n'
    )
    with pytest.raises(NotRegisteredError, match="no sha256"):
        resolve_checkpoint("m")
    assert verify_entry(get_entry("m")).state == "unregistered"


def test_task_of_a_named_checkpoint_is_checked(tmp_path, user_manifest, no_package_entries):
    ckpt = make_checkpoint(tmp_path / "m.safetensors", task="mif")
    user_manifest(local_entry("m", ckpt, task="mif"))
    with pytest.raises(WeightsError, match="is a 'mif' model, not 'ivif'"):
        resolve_checkpoint("m", task="ivif")


# --------------------------------------------------------------------------------------------------- hub downloads


def test_pull_then_cache_hit_makes_no_request(
    hub, ckpt_bytes, user_manifest, no_package_entries, hermetic_env
):
    revision = hub.add(REPO, "model.safetensors", ckpt_bytes)
    user_manifest(hub_entry("team", revision, ckpt_bytes))
    assert verify_entry(get_entry("team")).state == "not downloaded"
    path = resolve_checkpoint("team", task="ivif", progress=False)
    assert path.read_bytes() == ckpt_bytes
    assert hermetic_env / "hf" / "hub" in path.parents  # the standard cache under HF_HOME
    assert f"snapshots/{revision}/model.safetensors" in path.as_posix()
    assert hub.count("GET") == 1, hub.requests
    hub.reset()
    assert resolve_checkpoint("team", progress=False) == path
    assert pull("team", progress=False) == path
    assert hub.count() == 0
    assert verify_entry(get_entry("team")).state == "verified"
    assert pull("team", progress=False, force_download=True) == path  # --force downloads again
    assert hub.count("GET") == 1


def test_offline_uses_the_cache_without_any_request(plain_hub, ckpt_bytes, user_manifest, no_package_entries,
                                                    monkeypatch):  # fmt: skip
    revision = plain_hub.add(REPO, "model.safetensors", ckpt_bytes)
    user_manifest(hub_entry("team", revision, ckpt_bytes))
    path = pull("team", progress=False)
    plain_hub.reset()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert resolve_checkpoint("team") == path
    assert plain_hub.count() == 0


def test_offline_not_cached_says_how_to_fix(
    plain_hub, ckpt_bytes, user_manifest, no_package_entries, monkeypatch
):
    revision = plain_hub.add(REPO, "model.safetensors", ckpt_bytes)
    user_manifest(hub_entry("team", revision, ckpt_bytes))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(NotDownloadedError) as info:
        resolve_checkpoint("team")
    message = str(info.value)
    assert "\n" not in message
    assert "mmfuse weights pull team" in message and "unset HF_HUB_OFFLINE" in message
    assert plain_hub.count() == 0
    with pytest.raises(NotDownloadedError):  # explicit offline=True as well, even with the variable unset
        monkeypatch.delenv("HF_HUB_OFFLINE")
        resolve_checkpoint("team", offline=True)
    assert plain_hub.count() == 0


def test_tampered_download_is_deleted_and_refused(
    hub, ckpt_bytes, user_manifest, no_package_entries, hermetic_env
):
    evil = bytearray(ckpt_bytes)
    evil[-1] ^= 0xFF
    revision = hub.add(REPO, "model.safetensors", bytes(evil))  # the server serves other bytes than published
    user_manifest(hub_entry("team", revision, ckpt_bytes))
    with pytest.raises(ChecksumMismatchError) as info:
        resolve_checkpoint("team", progress=False)
    message = str(info.value)
    assert f"expected {sha(ckpt_bytes)}" in message and f"got {sha(bytes(evil))}" in message
    assert "\n" not in message
    assert cache_files(hermetic_env / "hf" / "hub") == []
    assert verify_entry(get_entry("team")).state == "not downloaded"


def test_corrupt_cache_is_replaced_online_and_refused_offline(plain_hub, ckpt_bytes, user_manifest, no_package_entries,
                                                              monkeypatch):  # fmt: skip
    revision = plain_hub.add(REPO, "model.safetensors", ckpt_bytes)
    user_manifest(hub_entry("team", revision, ckpt_bytes))
    path = pull("team", progress=False)
    blob = path.resolve()
    blob.write_bytes(b"\0" * len(ckpt_bytes))  # bit rot / tampering in the cache
    assert verify_entry(get_entry("team")).state == "CORRUPT"
    plain_hub.reset()
    assert resolve_checkpoint("team", progress=False).read_bytes() == ckpt_bytes  # deleted + downloaded again
    assert plain_hub.count("GET") == 1
    pull("team", progress=False).resolve().write_bytes(b"\0" * len(ckpt_bytes))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ChecksumMismatchError, match="deleted from the cache"):
        resolve_checkpoint("team")
    assert verify_entry(get_entry("team")).state == "not downloaded"


@pytest.mark.parametrize(
    ("where", "fragment"),
    [("file", "file model.safetensors not found"), ("revision", "revision"), ("repo", "repository")],
)
def test_missing_on_server(where, fragment, hub, ckpt_bytes, user_manifest, no_package_entries):
    revision = hub.add(REPO, "other.safetensors", ckpt_bytes)
    if where == "revision":
        revision = "b" * 40
    repo = "team/nope" if where == "repo" else REPO
    user_manifest(hub_entry("team", revision, ckpt_bytes, repo=repo))
    with pytest.raises(DownloadError) as info:
        resolve_checkpoint("team", progress=False)
    assert fragment in str(info.value) and "\n" not in str(info.value)
    assert info.value.exit_code == 1
    if where == "file":
        assert "404" in str(info.value)


def test_server_down(ckpt_bytes, user_manifest, no_package_entries, monkeypatch, hermetic_env):
    with FakeHub() as dead:
        endpoint = dead.endpoint
    monkeypatch.setenv("HF_ENDPOINT", endpoint)  # port now closed: connection refused
    user_manifest(hub_entry("team", "c" * 40, ckpt_bytes))
    with pytest.raises(DownloadError) as info:
        resolve_checkpoint("team", progress=False)
    assert "unreachable" in str(info.value) and endpoint in str(info.value)
    assert "\n" not in str(info.value)
    assert cache_files(hermetic_env / "hf" / "hub") == []


@pytest.mark.parametrize("fault", ["truncate", "short"])
def test_truncated_download_keeps_nothing(
    fault, hub, ckpt_bytes, user_manifest, no_package_entries, hermetic_env
):
    revision = hub.add(REPO, "model.safetensors", ckpt_bytes, fault=fault)
    user_manifest(hub_entry("team", revision, ckpt_bytes))
    with pytest.raises(DownloadError, match="failed") as info:
        resolve_checkpoint("team", progress=False)
    assert "\n" not in str(info.value)
    assert cache_files(hermetic_env / "hf" / "hub") == []
    assert not list((hermetic_env / "hf" / "hub").rglob("*.incomplete"))


def test_interrupted_download_resumes_and_verifies(hub, ckpt_bytes, user_manifest, no_package_entries):
    revision = hub.add(REPO, "model.safetensors", ckpt_bytes, fault="truncate_once")
    user_manifest(hub_entry("team", revision, ckpt_bytes))
    assert resolve_checkpoint("team", progress=False).read_bytes() == ckpt_bytes
    assert hub.count("GET") == 2  # the cut transfer, then a Range request for the rest


# --------------------------------------------------------------------------------------------------- CLI


def invoke(*args: str):
    return CliRunner().invoke(app, ["weights", *args])


def test_cli_list_pull_path_verify(plain_hub, ckpt_bytes, tmp_path, user_manifest, no_package_entries):
    revision = plain_hub.add(REPO, "model.safetensors", ckpt_bytes)
    local = make_checkpoint(tmp_path / "l.safetensors", task="mif", seed=9)
    user_manifest(hub_entry("team", revision, ckpt_bytes) + local_entry("loc", local, task="mif")
                  + '[defaults]\nivif = "team"\n')  # fmt: skip

    result = invoke("list", "--json")
    assert result.exit_code == 0, result.output
    rows = {row["name"]: row for row in map(json.loads, result.stdout.splitlines())}
    assert rows["team"]["status"] == "not downloaded" and rows["team"]["default"] is True
    assert rows["team"]["revision"] == revision and rows["team"]["sha256"] == sha(ckpt_bytes)
    assert rows["loc"]["status"] == "present+verified" and rows["loc"]["default"] is False

    result = invoke("path", "team")
    assert result.exit_code == 1 and "mmfuse weights pull team" in result.stderr

    result = invoke("pull", "team")
    assert result.exit_code == 0, result.output
    pulled = Path(result.stdout.strip())
    assert pulled.read_bytes() == ckpt_bytes
    assert "downloading checkpoint 'team'" in result.stderr

    result = invoke("path", "team")
    assert result.exit_code == 0 and Path(result.stdout.strip()) == pulled

    result = invoke("list")
    assert result.exit_code == 0
    table = result.stdout.splitlines()
    assert table[0].split() == ["NAME", "TASK", "DEFAULT", "SOURCE", "SIZE", "STATUS"]
    assert any(line.startswith("team") and "cached+verified" in line and "*" in line for line in table)

    assert invoke("verify").exit_code == 0
    result = invoke("verify", str(local))
    assert result.exit_code == 0 and sha(local.read_bytes()) in result.stdout and "loc" in result.stderr

    local.write_bytes(local.read_bytes()[:-1] + b"!")
    result = invoke("verify", "loc")
    assert result.exit_code == 1
    assert "expected" in result.stderr and sha(local.read_bytes()) in result.stderr
    assert invoke("verify").exit_code == 1
    assert invoke("path", "loc").exit_code == 1
    assert invoke("list").exit_code == 0  # list reports, it does not fail


def test_cli_errors_and_exit_codes(plain_hub, ckpt_bytes, user_manifest, no_package_entries, monkeypatch):
    revision = plain_hub.add(REPO, "other.safetensors", ckpt_bytes)
    user_manifest(hub_entry("gone", revision, ckpt_bytes))
    result = invoke("pull", "gone")
    assert result.exit_code == 1
    assert [line for line in result.stderr.splitlines() if line.startswith("error:")] == [
        line for line in result.stderr.splitlines() if "not found" in line
    ]
    assert invoke("pull", "nope").exit_code == 2
    assert invoke("path", "nope").exit_code == 2
    assert invoke("verify", "nope").exit_code == 2
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    result = invoke("pull", "gone")
    assert result.exit_code == 1 and "unset HF_HUB_OFFLINE" in result.stderr
    monkeypatch.setenv(ENV_USER_MANIFEST, "/nonexistent/weights.toml")
    assert invoke("list").exit_code == 2


# --------------------------------------------------------------------------------------------------- maintainer tool


def _fake_repo(root: Path) -> None:
    (root / "src" / "mmfuse_cli" / "checkpoints").mkdir(parents=True)
    text = (REPO_ROOT / "src" / "mmfuse_cli" / "weights.toml").read_text(encoding="utf-8")
    (root / "weights.toml").write_text(text, encoding="utf-8")
    (root / "src" / "mmfuse_cli" / "weights.toml").write_text(text, encoding="utf-8")


def test_register_tool_updates_both_manifests(tmp_path, capsys):
    root = tmp_path / "repo"
    _fake_repo(root)
    names = {"ivif": "drfusion-ivif-s", "mif": "drfusion-mif-s"}
    for seed, (task, name) in enumerate(names.items()):
        ckpt = make_checkpoint(
            root / "src" / "mmfuse_cli" / "checkpoints" / f"{name}.safetensors", task=task, seed=seed
        )
        code = weights_tool.main(["register", str(ckpt), "--name", name, "--task", task, "--default", "--license",
                                  "MIT", "--description", f"test {task}", "--root", str(root)])  # fmt: skip
        assert code == 0
    top = (root / "weights.toml").read_text(encoding="utf-8")
    assert top == (root / "src" / "mmfuse_cli" / "weights.toml").read_text(encoding="utf-8")
    assert top.startswith("# mmfuse checkpoint manifest")  # the comment header is kept
    manifest = parse_manifest(top, "weights.toml")
    for task, name in names.items():
        entry = manifest.entries[name]
        data = (root / "src" / "mmfuse_cli" / "checkpoints" / f"{name}.safetensors").read_bytes()
        assert (entry.sha256, entry.size, entry.task, entry.description) == (
            sha(data),
            len(data),
            task,
            f"test {task}",
        )
        assert manifest.defaults[task] == name
    assert weights_tool.main(["check", "--root", str(root)]) == 0
    (root / "weights.toml").write_text(top + "\n", encoding="utf-8")
    assert weights_tool.main(["check", "--root", str(root)]) == 1
    assert "differ" in capsys.readouterr().err


def test_register_tool_refuses_bad_input(tmp_path, capsys):
    root = tmp_path / "repo"
    _fake_repo(root)
    outside = make_checkpoint(tmp_path / "drfusion-ivif-s.safetensors")
    args = [
        "--name",
        "drfusion-ivif-s",
        "--task",
        "ivif",
        "--license",
        "MIT",
        "--description",
        "d",
        "--root",
        str(root),
    ]
    assert weights_tool.main(["register", str(outside), *args]) == 2  # not inside checkpoints/
    wrong_task = make_checkpoint(
        root / "src" / "mmfuse_cli" / "checkpoints" / "drfusion-ivif-s.safetensors", task="mif"
    )
    assert weights_tool.main(["register", str(wrong_task), *args]) == 2
    assert "not 'ivif'" in capsys.readouterr().err
    assert weights_tool.main(["check", "--root", str(root)]) == 1  # placeholders are not verified


def test_entry_tool_for_user_manifests(tmp_path, capsys, monkeypatch, plain_hub, no_package_entries):
    ckpt = make_checkpoint(tmp_path / "team.safetensors", task="mif")
    revision = plain_hub.add(REPO, "ckpt/team.safetensors", ckpt.read_bytes())
    user = tmp_path / "cfg" / "weights.toml"
    code = weights_tool.main(["register", str(ckpt), "--name", "team", "--license", "CC-BY-4.0", "--description",
                              "ours", "--hub-repo", REPO, "--revision", revision, "--filename",
                              "ckpt/team.safetensors", "--manifest", str(user), "--default"])  # fmt: skip
    assert code == 0
    monkeypatch.setenv(ENV_USER_MANIFEST, str(user))
    assert default_model_for("mif") == "team"
    assert resolve_checkpoint(None, task="mif", progress=False).read_bytes() == ckpt.read_bytes()
    capsys.readouterr()
    assert (
        weights_tool.main(["entry", str(ckpt), "--name", "x", "--license", "MIT", "--description", "d"]) == 0
    )
    snippet = capsys.readouterr().out
    assert parse_manifest(snippet, "<snippet>").entries["x"].sha256 == sha(ckpt.read_bytes())


def test_checkpoint_metadata_is_read_without_unpickling(tmp_path):
    ckpt = make_checkpoint(tmp_path / "m.safetensors", task="mif", seed=4)
    info = describe_checkpoint_file(ckpt)
    assert info["task"] == "mif" and info["config"] == {"width": 4, "seed": 4}
    assert info["sha256"] == sha(ckpt.read_bytes()) and info["size"] == os.path.getsize(ckpt)
    bad = make_checkpoint(tmp_path / "b.safetensors", extra={"format": "pt"})
    with pytest.raises(WeightsError, match="not an mmfuse checkpoint"):
        check_checkpoint_file(bad)
