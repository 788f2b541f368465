"""The suite's options, fixtures and end-of-run table (see robutler_testing.conformance)."""

from robutler_testing.conformance.plugin import *  # noqa: F403
