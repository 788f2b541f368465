"""pyproject.toml: the bounds and extras are what the code and the README's test command need."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from helpers import documentation
from packaging.requirements import Requirement
from packaging.version import Version

tomllib = pytest.importorskip("tomllib")  # Python 3.11+
ROOT = Path(__file__).resolve().parent.parent
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def requirement(extra: str, name: str) -> Requirement:
    for line in PROJECT["optional-dependencies"][extra]:
        req = Requirement(line)
        if req.name == name:
            return req
    raise AssertionError(f"{name} is not in the {extra!r} extra")


def test_openai_lower_bound_is_the_first_release_sending_through_httpx2() -> None:
    import httpx2
    import openai

    minimum = min(Version(s.version) for s in requirement("testing", "openai").specifier)
    assert minimum >= Version("3.0"), f"openai>={minimum} sends through httpx, not httpx2"
    # what mock_openai and the conformance suite rely on:
    assert issubclass(openai.DefaultHttpxClient, httpx2.Client)
    assert hasattr(openai, "DefaultAsyncHttpx2Client")


def test_the_test_command_installs_schemathesis_so_nothing_is_skipped() -> None:
    requirement("dev", "schemathesis")
    assert importlib.util.find_spec("schemathesis") is not None


def test_respx_is_used_where_the_readme_says() -> None:
    requirement("testing", "respx")
    readme = documentation()
    assert "respx_mock" in readme.split("<!-- readme-test-file -->", 1)[1].split("```", 2)[1]


def test_the_distribution_name_is_not_the_other_robutler() -> None:
    # "robutler" on the package index is another SDK (no testing extra, no robutler_testing)
    assert PROJECT["name"] == "robutler-sdk"
    for line in PROJECT["optional-dependencies"]["dev"]:
        req = Requirement(line)
        assert req.name != "robutler", f"{line!r} would install the other project"
    assert Requirement(PROJECT["optional-dependencies"]["dev"][0]).name == "robutler-sdk"


def test_the_wheel_has_the_name_the_extras_both_packages_and_the_license(
    built_wheel: Path,
) -> None:
    import email
    import zipfile

    wheel = built_wheel
    assert wheel.name.startswith("robutler_sdk-")
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        (meta_name,) = [n for n in names if n.endswith(".dist-info/METADATA")]
        meta = email.message_from_bytes(zf.read(meta_name))
        (license_name,) = [n for n in names if n.endswith("/LICENSE")]
        license_text = zf.read(license_name).decode()
    assert meta["Name"] == "robutler-sdk"
    assert meta["License-Expression"] == "MIT"
    assert "MIT License" in license_text
    assert {"testing", "agents", "dev"} <= set(meta.get_all("Provides-Extra"))
    assert any(r.startswith("robutler-sdk[") for r in meta.get_all("Requires-Dist"))
    assert "robutler/__init__.py" in names
    assert "robutler_testing/__init__.py" in names
    assert "robutler/server/playground_ui/playground.js" in names
