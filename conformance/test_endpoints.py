"""The endpoints cases of robutler_testing.conformance."""

from robutler_testing.conformance.test_endpoints import *  # noqa: F403
