"""A Hugging Face Hub cache built on local disk, in the Hub's own layout, from the converted default
model, so `judge models pull ORG/NAME` can be exercised with ``HF_HUB_OFFLINE=1`` (no hub is reachable
in tests)::

    <cache>/models--HuggingFaceTB--SmolLM2-135M-Instruct/
        blobs/<sha256 of each file>
        refs/main                      # the commit below
        snapshots/<commit>/<file>      # a relative link to its blob
"""

from __future__ import annotations

import hashlib
from pathlib import Path

HUB_REPO = "HuggingFaceTB/SmolLM2-135M-Instruct"
COMMIT = "a" * 8 + hashlib.sha1(b"judge-service test snapshot").hexdigest()[8:]


def build_hub_cache(model_folder: Path, cache: Path, repo_id: str = HUB_REPO, commit: str = COMMIT) -> Path:
    """Lay ``model_folder``'s files out as the cached snapshot ``commit`` of ``repo_id`` (branch main)
    under ``cache``; return the snapshot folder."""
    storage = cache / ("models--" + repo_id.replace("/", "--"))
    blobs, snapshot = storage / "blobs", storage / "snapshots" / commit
    blobs.mkdir(parents=True)
    snapshot.mkdir(parents=True)
    for source in sorted(model_folder.iterdir()):
        if not source.is_file():
            continue
        data = source.read_bytes()
        digest = hashlib.sha256(data).hexdigest()
        (blobs / digest).write_bytes(data)
        (snapshot / source.name).symlink_to(Path("../../blobs") / digest)
    (storage / "refs").mkdir()
    (storage / "refs" / "main").write_text(commit)
    return snapshot
