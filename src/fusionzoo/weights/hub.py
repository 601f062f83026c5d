"""The Hugging Face Hub, through ``huggingface_hub``'s own functions (the optional ``[hub]`` extra).

A hub repository holds a pretrained folder (``pretrained``): ``push_to_hub`` writes one with
``save_pretrained`` and uploads it with ``HfApi.upload_folder``; ``"hf-hub:owner/name"`` (as
``fusionzoo.load``'s path or ``create``'s ``weights=``) reads it with ``snapshot_download``, which
serves the local hub cache (``HF_HUB_CACHE``) and, with ``HF_HUB_OFFLINE=1``, never touches the
network. ``huggingface_hub`` is imported only when one of these is called.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from torch import nn

from ..errors import MissingWeightsError
from .pretrained import save_pretrained
from .record import Record

PREFIX = "hf-hub:"
INSTALL = 'pip install "fusionzoo[hub]"'


def _hub() -> Any:
    try:
        import huggingface_hub
    except ImportError:
        raise ImportError(f"the Hugging Face Hub needs huggingface_hub, which is not installed: {INSTALL}") from None
    return huggingface_hub


def parse(source: str) -> tuple[str, str | None]:
    """``"hf-hub:owner/name[@revision]"`` -> ``("owner/name", revision)``; ``ValueError`` saying the form otherwise."""
    repo = source[len(PREFIX):] if source.startswith(PREFIX) else source
    repo, _, revision = repo.partition("@")
    if repo.count("/") != 1 or not all(repo.split("/")):
        raise ValueError(f"{source!r}: a hub model is named hf-hub:OWNER/NAME (optionally @REVISION)")
    return repo, revision or None


def download(source: str) -> Path:
    """The local folder of the hub model ``source`` (``"hf-hub:owner/name[@revision]"``): from the hub
    cache when it holds it, else downloaded (unless ``HF_HUB_OFFLINE`` is set). ``MissingWeightsError``
    when it is not cached and cannot be fetched."""
    hub = _hub()
    repo, revision = parse(source)
    try:
        return Path(hub.snapshot_download(repo_id=repo, revision=revision))
    except hub.errors.LocalEntryNotFoundError as err:
        cache = os.environ.get("HF_HUB_CACHE") or os.environ.get("HF_HOME") or "the default hub cache"
        raise MissingWeightsError(
            f"{source}: not in the local hub cache ({cache}) and it cannot be downloaded now ({err}); "
            "unset HF_HUB_OFFLINE to download it, or point HF_HUB_CACHE at a cache that holds it"
        ) from None


def push_to_hub(
    model: nn.Module | str | os.PathLike[str],
    repo_id: str,
    *,
    record: Record | None = None,
    private: bool | None = None,
    token: str | None = None,
    commit_message: str = "Upload fusionzoo model",
) -> str:
    """Upload ``model`` (a model built by ``fusionzoo.create``, a checkpoint path, or a pretrained
    folder) to the hub repository ``repo_id`` (``"owner/name"``, created if missing) as a pretrained
    folder; returns the commit's URL. ``record``: as ``save_pretrained``'s."""
    hub = _hub()
    api = hub.HfApi(token=token)
    api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
    if isinstance(model, (str, os.PathLike)) and Path(model).is_dir():
        folder = Path(model)
        return str(api.upload_folder(repo_id=repo_id, folder_path=folder, commit_message=commit_message))
    with tempfile.TemporaryDirectory(prefix="fusionzoo-push-") as staging:
        folder = save_pretrained(model, staging, record=record)
        return str(api.upload_folder(repo_id=repo_id, folder_path=folder, commit_message=commit_message))
