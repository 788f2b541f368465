"""The mutation catalogue (mutants/) stays in step with robutler/server.

`nox -s mutants` runs the catalogue against the lifecycle properties; this fast test only
checks that every mutant still finds its line, changes exactly one line, and compiles, so
a change to the server that moves a target is noticed by the normal suite.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from mutants.catalogue import DROPPED, MUTANTS, Dropped, Mutant
from mutants.mutate import Drift, apply

SERVER = Path(__file__).resolve().parent.parent / "robutler" / "server"


def test_the_catalogue_is_large_and_its_names_are_unique() -> None:
    names = [m.name for m in MUTANTS] + [d.mutant.name for d in DROPPED]
    assert len(MUTANTS) >= 30
    assert len(names) == len(set(names))
    assert all(m.bug.endswith(".") and len(m.bug) > 20 for m in MUTANTS)
    assert all(d.why for d in DROPPED)


@pytest.mark.parametrize("mutant", MUTANTS, ids=[m.name for m in MUTANTS])
def test_each_mutant_changes_one_line_that_still_exists(mutant: Mutant) -> None:
    source = (SERVER / mutant.file).read_text()
    mutated = apply(mutant, source)
    before, after = source.splitlines(), mutated.splitlines()
    assert len(before) == len(after)
    assert sum(a != b for a, b in zip(before, after, strict=True)) == 1
    compile(mutated, mutant.file, "exec")


@pytest.mark.parametrize("dropped", DROPPED, ids=[d.mutant.name for d in DROPPED])
def test_each_dropped_mutant_still_names_a_line_of_the_server(dropped: Dropped) -> None:
    # a note saying why a mutant cannot be caught is about code that must still be there
    source = (SERVER / dropped.mutant.file).read_text()
    compile(apply(dropped.mutant, source), dropped.mutant.file, "exec")


def test_a_target_that_moved_fails_loudly() -> None:
    gone = Mutant("gone", "lifecycle.py", "this text is not in the server", "x", "Nothing.")
    with pytest.raises(Drift, match=r"'gone'.*occurs 0 times in robutler/server/lifecycle\.py"):
        apply(gone, (SERVER / "lifecycle.py").read_text())
    twice = Mutant("twice", "endpoint.py", "await _close(items)", "pass", "Ambiguous.")
    with pytest.raises(Drift, match="occurs 2 times"):
        apply(twice, (SERVER / "endpoint.py").read_text())
