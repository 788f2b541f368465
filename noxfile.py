"""Every workflow is one command: `nox -s tests`, `nox -s lint`, `nox -s typecheck`, ...

`nox` alone runs tests, conformance, lint and typecheck. Each session installs the
project from this checkout into its own virtualenv.
"""

from __future__ import annotations

import nox

nox.options.sessions = ["tests", "conformance", "lint", "typecheck"]
nox.options.reuse_existing_virtualenvs = True


@nox.session
def tests(session: nox.Session) -> None:
    """The unit and integration tests (tests/)."""
    _install(session, ".[dev]")
    session.run("python", "-m", "pytest", "tests", *session.posargs)


@nox.session
def conformance(session: nox.Session) -> None:
    """The official-client conformance suite (robutler_testing.conformance); args after -- go
    to it (e.g. --base-url URL --agent NAME)."""
    _install(session, ".[dev]")
    session.run("python", "-m", "pytest", "conformance", "-p", "no:cacheprovider", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff check and ruff format --check."""
    session.install("ruff")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session
def typecheck(session: nox.Session) -> None:
    """mypy on both packages."""
    _install(session, ".[dev]")
    session.run("mypy", "robutler", "robutler_testing")


@nox.session
def docs(session: nox.Session) -> None:
    """Build the documentation site (mkdocs, docs/) with --strict: a broken link, a page
    missing from the navigation or a reference mkdocstrings cannot find fails it.
    `-- serve` serves it on 127.0.0.1:8000 instead."""
    _install(session, ".[dev]")
    env = {"NO_MKDOCS_2_WARNING": "1"}
    if session.posargs[:1] == ["serve"]:
        session.run("mkdocs", "serve", "--strict", *session.posargs[1:], env=env)
    else:
        session.run("mkdocs", "build", "--strict", *session.posargs, env=env)


@nox.session
def lifecycle(session: nox.Session) -> None:
    """The Hypothesis lifecycle properties with the deep profile (thousands of scenarios)."""
    _install(session, ".[dev]")
    session.run(
        "python",
        "-m",
        "pytest",
        "tests/testing/test_lifecycle_properties.py",
        "-p",
        "no:cacheprovider",
        "--timeout=3600",
        *session.posargs,
        env={"ROBUTLER_LIFECYCLE_PROFILE": "deep"},
    )


@nox.session
def mutants(session: nox.Session) -> None:
    """Mutation testing: one-line bugs in robutler/server (mutants/catalogue.py), each in a
    copy of the package, against the lifecycle properties; prints the kill rate.

    Args after -- go to `python -m mutants` (e.g. `-k charges`, `-j 1`).
    """
    _install(session, ".[dev]")
    session.run("python", "-m", "mutants", *session.posargs)


def _install(session: nox.Session, spec: str) -> None:
    session.install("-e", spec)


@nox.session
def fuzz(session: nox.Session) -> None:
    """Deep fuzzing: the Hypothesis request fuzzer and schemathesis on the OpenAPI document."""
    _install(session, ".[dev]")
    examples = session.posargs[0] if session.posargs else "3000"
    session.run(
        "python",
        "-m",
        "pytest",
        "tests/test_fuzz.py",
        "tests/test_schemathesis.py",
        "-p",
        "no:cacheprovider",
        env={"ROBUTLER_FUZZ_EXAMPLES": examples},
    )


@nox.session
def bench(session: nox.Session) -> None:
    """Load benchmarks (benchmarks/): robutler against hand-written FastAPI and raw ASGI,
    and the production workloads (many slow streams, the Agents SDK, workers).

    Installs wrk with apt-get when it is missing. `-- --quick` for a short run (~4 min);
    `-- --only slow,sdk` for some workloads; `-- --profile c [--workload stream100]`
    profiles an app with py-spy instead.
    """
    import os
    import shutil

    _install(session, ".[agents]")
    if "--profile" in session.posargs:
        session.install("py-spy")
    if shutil.which("wrk") is None:
        sudo = [] if os.geteuid() == 0 else ["sudo"]
        env = {"DEBIAN_FRONTEND": "noninteractive"}
        session.run(*sudo, "apt-get", "update", "-qq", external=True, env=env)
        session.run(*sudo, "apt-get", "install", "-y", "-qq", "wrk", external=True, env=env)
    session.run("python", "-m", "benchmarks.bench", *session.posargs)


@nox.session(python=["3.10", "3.11", "3.12", "3.13"])
def compat(session: nox.Session) -> None:
    """The test suite on every supported Python that is installed (others are skipped)."""
    _install(session, ".[dev]")
    session.run("python", "-m", "pytest", "-q", "-p", "no:cacheprovider", *session.posargs)
