"""Deprecated import paths kept for code written against robutler's first documentation.

Nothing here is a test: `robutler.tests.test_server` only forwards `create_test_client` to
`robutler_testing`, where the test harness lives now.
"""
