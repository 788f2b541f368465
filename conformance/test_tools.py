"""The tools cases of robutler_testing.conformance."""

from robutler_testing.conformance.test_tools import *  # noqa: F403
