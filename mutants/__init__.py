"""Mutation testing of the lifecycle properties: `nox -s mutants` (or `python -m mutants`).

`catalogue.py` lists one-line bugs in `robutler/server`; `python -m mutants` applies each
to a copy of the package and runs `robutler_testing.lifecycle`'s properties against it.
"""
