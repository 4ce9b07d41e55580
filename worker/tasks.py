"""Thin Celery tasks, each calling one service. Filled in by the ingest work."""
