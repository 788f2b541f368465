"""The Responses API and /v1 front-door cases of robutler_testing.conformance."""

from robutler_testing.conformance.test_responses import *  # noqa: F403
