"""The committed ``openapi.yaml`` is exactly what the app serves; ``judge openapi`` regenerates it."""

from __future__ import annotations

from typing import Any

import yaml

from app.core.config import Settings


def openapi_document() -> dict[str, Any]:
    from app.main import create_app

    # The schema does not depend on connections; any settings build the same routes.
    return create_app(Settings(database_url="sqlite://", redis_url="redis://unused")).openapi()


def openapi_yaml() -> str:
    return yaml.safe_dump(openapi_document(), sort_keys=False, allow_unicode=True, width=100)
