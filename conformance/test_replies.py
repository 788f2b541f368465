"""The replies cases of robutler_testing.conformance."""

from robutler_testing.conformance.test_replies import *  # noqa: F403
