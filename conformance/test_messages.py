"""The messages cases of robutler_testing.conformance."""

from robutler_testing.conformance.test_messages import *  # noqa: F403
