"""Framework-agnostic ASGI and WSGI middleware."""
