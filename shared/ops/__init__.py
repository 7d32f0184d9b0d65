"""Batch work: daily analytics, reports, cleanup of caches, images and stuck jobs."""
