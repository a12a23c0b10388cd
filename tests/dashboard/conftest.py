"""The API fixtures (real app, Postgres rolled back per test, Redis, scripted worker)."""

from tests.api.conftest import api_key, client, state, worker  # noqa: F401
