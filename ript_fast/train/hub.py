"""Checkpoint folders (`pretrained.py`) and the Hugging Face Hub: `ript-fast push` and `train --push-to-hub` upload
one, `from_pretrained("owner/name")` downloads one (`download_folder`).

This is huggingface_hub's real API (`HfApi.create_repo`, then `HfApi.upload_folder` of the folder's three files;
`snapshot_download` of those files into its cache), with the token given or the one huggingface_hub finds itself
(`HF_TOKEN`, `hf auth login`). It has been tested only against a local stand-in for those methods
(python_tests/test_pretrained.py): no real upload or download was made from the machines this was written on,
which reach no network.

huggingface_hub is not a dependency of its own (transformers brings it): without it, or when the upload fails, the
answer is one line (`HubError`) and the local folder stays as it is.
"""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

from ript_fast.train.pretrained import FOLDER_FILES, read_folder_meta


class HubError(Exception):
    """huggingface_hub is missing, the repo id is malformed, or the hub refused or failed the upload."""


def check_hub(repo_id: str) -> None:
    """Before a run that ends with a push: huggingface_hub imports and `repo_id` is a well-formed repo id, so
    an hour of training does not end with a push that could never have worked."""
    hub = _hub()
    try:
        hub.utils.validate_repo_id(repo_id)
    except hub.errors.HFValidationError as err:
        raise HubError(f"hub repo {repo_id!r}: {err}") from None


def push_to_hub(folder: str | Path, repo_id: str, token: str | None = None, private: bool | None = None) -> str:
    """Creates the model repo `repo_id` if needed and uploads the folder's config.json, model.safetensors and
    README.md in one commit; returns the repo's URL. Nothing else in the folder is uploaded."""
    folder = Path(folder)
    meta = read_folder_meta(folder)  # only a complete ript-fast folder goes up
    check_hub(repo_id)
    api = _hub().HfApi(token=token, library_name="ript-fast", library_version=str(meta["version"]))
    try:
        url = api.create_repo(repo_id, repo_type="model", private=private, exist_ok=True)
        api.upload_folder(
            repo_id=repo_id,
            repo_type="model",
            folder_path=folder,
            allow_patterns=list(FOLDER_FILES),
            commit_message=f"ript-fast {meta['family']} policy ({meta['version']})",
        )
    except Exception as err:  # network, authentication, quota: whatever the hub raises is the user's to see
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        retry = f"retry with `ript-fast push {folder} {repo_id}`"
        raise HubError(f"push of {folder} to {repo_id} failed ({reason}); the folder is kept: {retry}") from None
    return str(url)


def download_folder(repo_id: str, revision: str | None = None, token: str | None = None) -> Path:
    """The local copy (huggingface_hub's cache) of the checkpoint folder in hub repo `repo_id`: its config.json,
    model.safetensors and README.md only (nothing else in the repo is fetched, and none of it is executed)."""
    check_hub(repo_id)
    try:
        path = _hub().snapshot_download(
            repo_id, repo_type="model", revision=revision, token=token, allow_patterns=list(FOLDER_FILES)
        )
    except Exception as err:  # not found, network, authentication: the user's to see
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise HubError(f"{repo_id}: no such folder here, and its download from the hub failed ({reason})") from None
    return Path(path)


def _hub() -> ModuleType:
    """huggingface_hub, or one line saying how to get it."""
    try:
        import huggingface_hub
        import huggingface_hub.errors
        import huggingface_hub.utils
    except ImportError:
        raise HubError("the hub needs huggingface_hub: pip install huggingface_hub") from None
    return huggingface_hub
