"""Checkpoints: the manifest (``weights.toml``) and turning a model NAME or PATH into a verified local file.

Two manifest layers, the later one overrides the earlier one entry by entry (same ``name``) and per task default:

1. the manifest shipped inside the package (``mmfuse_cli/weights.toml``, read with :mod:`importlib.resources`;
   the copy at the repository top level is for reviewers and must stay identical);
2. the user manifest: the file named by ``$MMFUSE_WEIGHTS_MANIFEST`` (which must then exist), else
   ``<config dir>/mmfuse/weights.toml`` when that file exists (``$XDG_CONFIG_HOME`` or ``~/.config`` on Linux,
   ``~/Library/Application Support`` on macOS, ``%APPDATA%`` on Windows).

Each entry has a source: ``bundled`` (a file in ``mmfuse_cli/checkpoints/``), ``local`` (a file path, relative
to the manifest's folder) or ``hub`` (a Hugging Face Hub ``repo_id`` + ``filename`` + ``revision`` pinned to a
40-hex commit). Every file is checked against the entry's ``sha256`` and ``size`` after every download and before
every load; a file that does not match is never returned (a downloaded one is also deleted from the cache).

Hub downloads use :func:`huggingface_hub.hf_hub_download` with the standard cache, read from the environment at
every call: ``HF_HUB_CACHE`` / ``HF_HOME`` (cache), ``HF_ENDPOINT`` (a mirror or a private Hub),
``HF_HUB_OFFLINE`` (no network: cached files only), ``HF_TOKEN`` (private repos). Checkpoints are safetensors
files; nothing here ever unpickles anything.

Modules (import each name from its module; this package re-exports nothing):

* :mod:`~mmfuse_cli.weights.errors`: ``WeightsError`` and its subclasses (one-line messages, exit codes);
* :mod:`~mmfuse_cli.weights.manifest`: ``CheckpointEntry``, ``Manifest``, parsing, the manifest
  locations, ``load_manifest``, ``get_entry``, ``default_model_for``;
* :mod:`~mmfuse_cli.weights.hub`: the Hub cache and environment, ``entry_local_path``, downloads;
* :mod:`~mmfuse_cli.weights.resolve`: ``resolve_checkpoint``, ``fetch_entry``, ``verify_entry``,
  ``sha256_file`` and the file checks;
* :mod:`~mmfuse_cli.weights.tool`: the maintainer tool, ``python -m mmfuse_cli.weights.tool``.
"""
