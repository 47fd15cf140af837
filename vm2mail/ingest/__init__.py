"""Ingest: durable spool, workers, audio, message rendering and PGP/MIME."""
