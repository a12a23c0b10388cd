"""Prometheus metrics: API request figures, worker figures shared through Redis, queue and job gauges."""
