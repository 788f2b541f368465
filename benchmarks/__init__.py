"""Load benchmarks: robutler against a hand-written FastAPI app and a raw ASGI floor.

Run with `nox -s bench` (or `python -m benchmarks.bench --quick`). Nothing here is
collected by pytest.
"""
