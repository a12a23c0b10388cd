"""Which model requests run next (pure policy)."""
