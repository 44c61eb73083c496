"""Data protection: PII discovery (``pii``), and (next) datasets, secure ingestion and transforms."""
