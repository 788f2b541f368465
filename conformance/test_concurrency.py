"""The concurrency cases of robutler_testing.conformance."""

from robutler_testing.conformance.test_concurrency import *  # noqa: F403
