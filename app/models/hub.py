"""Models from the Hugging Face Hub: ``org/name[@revision]`` fetched into the Hub's own cache
(``HF_HUB_CACHE``, shared with every other Hugging Face tool), safetensors weights, config, tokenizer,
chat template and generation config only (never pickled ``.bin``/``.pt`` weights or GGUF files).

With ``HF_HUB_OFFLINE=1`` (or no network), a model already in the cache is taken from it; one that is
not gives an error that says whether the model or only the revision is missing."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from app.models.artifacts import ModelPullError, is_model_present

ALLOW_PATTERNS = (
    "*.safetensors",
    "*.safetensors.index.json",
    "config.json",
    "generation_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "tokenizer.model",
    "special_tokens_map.json",
    "added_tokens.json",
    "vocab.json",
    "merges.txt",
    "chat_template.jinja",
    "chat_template.json",
)
"""What a pull fetches: what transformers and vLLM need to serve a causal LM from safetensors."""

IGNORE_PATTERNS = ("original/*", "consolidated*.safetensors")
"""Duplicate copies of the weights that some repositories ship for other runtimes (e.g. Mistral's)."""


@dataclass(frozen=True)
class HubRef:
    """A model on the Hub: its repository id and, optionally, a branch, tag or commit."""

    repo_id: str
    revision: str | None = None

    @classmethod
    def parse(cls, text: str) -> HubRef:
        """``org/name`` or ``org/name@revision``; ValueError saying what is wrong otherwise."""
        from huggingface_hub.errors import HFValidationError
        from huggingface_hub.utils import validate_repo_id

        repo_id, at, revision = text.strip().partition("@")
        if at and not revision:
            raise ValueError(f"{text!r}: nothing after '@' (give a branch, tag or commit, or leave '@' out)")
        if "/" not in repo_id:
            raise ValueError(f"{text!r} is not a Hub model id (org/name, e.g. Qwen/Qwen2.5-7B-Instruct)")
        try:
            validate_repo_id(repo_id)
        except HFValidationError as exc:
            raise ValueError(f"{text!r} is not a Hub model id: {exc}") from None
        return cls(repo_id, revision or None)

    def __str__(self) -> str:
        return self.repo_id + (f"@{self.revision}" if self.revision else "")


def pull_hub_model(ref: HubRef, *, force: bool = False, quiet: bool = False) -> Path:
    """Fetch ``ref`` into the Hub cache (or find it there) and return its snapshot folder; raises
    ModelPullError naming the cause: no such model, no such revision, gated, unreachable and not
    cached, or a repository without safetensors weights."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import (
        GatedRepoError,
        HfHubHTTPError,
        IncompleteSnapshotError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )
    from huggingface_hub.utils import disable_progress_bars, enable_progress_bars

    if quiet:
        disable_progress_bars()
    try:
        folder = snapshot_download(
            ref.repo_id,
            revision=ref.revision,
            allow_patterns=list(ALLOW_PATTERNS),
            ignore_patterns=list(IGNORE_PATTERNS),
            force_download=force,
        )
    except RevisionNotFoundError:
        raise ModelPullError(f"{ref.repo_id} has no revision {ref.revision!r} on the Hub") from None
    except GatedRepoError:
        raise ModelPullError(
            f"{ref.repo_id} is gated: accept its conditions on the Hub, then set HF_TOKEN to a token of yours"
        ) from None
    except RepositoryNotFoundError:
        raise ModelPullError(
            f"no model {ref.repo_id} on the Hub (a private one needs HF_TOKEN set to a token with access)"
        ) from None
    except LocalEntryNotFoundError:
        raise ModelPullError(_not_cached(ref)) from None
    except (IncompleteSnapshotError, HfHubHTTPError, OSError) as exc:
        raise ModelPullError(f"could not fetch {ref}: {exc}") from None
    finally:
        if quiet:
            enable_progress_bars()
    path = Path(folder)
    if not is_model_present(path):
        raise ModelPullError(
            f"{ref} has no loadable safetensors model (config.json, *.safetensors and a tokenizer); "
            "repositories with only .bin, .pt or .gguf weights are not pulled"
        )
    return path


def _not_cached(ref: HubRef) -> str:
    """Why an offline (or unreachable-Hub) pull found nothing: the model or only its revision."""
    from huggingface_hub import constants
    from huggingface_hub.file_download import repo_folder_name

    cache = Path(constants.HF_HUB_CACHE)
    storage = cache / repo_folder_name(repo_id=ref.repo_id, repo_type="model")
    unreachable = "the Hub is not reachable (HF_HUB_OFFLINE=1 or no network)"
    if not storage.is_dir():
        return f"model {ref.repo_id} is not in the Hub cache {cache} and {unreachable}"
    cached = sorted(
        {p.name for p in (storage / "refs").glob("*") if p.is_file()}
        | {p.name[:12] for p in (storage / "snapshots").glob("*") if p.is_dir()}
    )
    return (
        f"revision {ref.revision or 'main'} of {ref.repo_id} is not in the Hub cache {cache} "
        f"(cached: {', '.join(cached) or 'nothing'}) and {unreachable}"
    )
