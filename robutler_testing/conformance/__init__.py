"""The conformance suite: drives a live server over HTTP with the official `openai` client.

Check any OpenAI-compatible server (yours, deployed or local) from an installed
`robutler-sdk[testing]` (see the README, "Install"):

    python -m robutler_testing.conformance --base-url URL [--agent NAME] [--api-key KEY]

Without `--base-url` it starts a reference robutler server on 127.0.0.1. Further
arguments go to pytest (e.g. `-k stream`). In robutler's own repository, `nox -s
conformance` and `python -m pytest conformance` run the same cases. See `plugin.py`.
"""
