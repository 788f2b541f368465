"""The conformance suite: drives a live server over HTTP with the official `openai` client.

Run it with `nox -s conformance` (or `python -m pytest conformance`). By default it starts
a reference robutler server on 127.0.0.1; `--base-url URL --agent NAME [--api-key KEY]`
points it at any OpenAI-compatible server instead. See `conformance/conftest.py`.
"""
