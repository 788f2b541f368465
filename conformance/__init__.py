"""The conformance suite, run from this repository: `nox -s conformance` or
`python -m pytest conformance [--base-url URL --agent NAME --api-key KEY]`.

The cases ship in the wheel as `robutler_testing.conformance` (run them with
`python -m robutler_testing.conformance`); the files here only collect them.
"""
