"""The failures cases of robutler_testing.conformance."""

from robutler_testing.conformance.test_failures import *  # noqa: F403
