"""The admin HTTP API (``/admin/api/v1``): JSON in the envelope, for scripts and the console."""
