"""The measurements: ingest, the whole pipeline, fan-out to subscribers, and the soak."""
