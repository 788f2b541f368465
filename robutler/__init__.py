"""robutler: serve AI agents behind OpenAI-compatible endpoints."""

__version__ = "0.1.0"
