"""Apply a catalogue mutant to the text of a source file, failing loudly on drift."""

from __future__ import annotations

from .catalogue import Mutant


class Drift(LookupError):
    """A mutant's target (or anchor) is not in the source any more: update the catalogue."""


def apply(mutant: Mutant, source: str) -> str:
    """`source` with the mutant's one line changed; raises `Drift` when it cannot be found."""
    lines = source.splitlines(keepends=True)
    start = 0
    if mutant.after is not None:
        anchors = [i for i, line in enumerate(lines) if mutant.after in line]
        if len(anchors) != 1:
            raise Drift(
                f"mutant {mutant.name!r}: its anchor {mutant.after!r} occurs {len(anchors)} "
                f"times in robutler/server/{mutant.file}, expected once"
            )
        start = anchors[0] + 1
    hits = [i for i, line in enumerate(lines) if i >= start and mutant.target in line]
    if mutant.after is None and len(hits) != 1:
        raise Drift(
            f"mutant {mutant.name!r}: its target {mutant.target!r} occurs {len(hits)} times "
            f"in robutler/server/{mutant.file}, expected once (or give an anchor)"
        )
    if not hits:
        raise Drift(
            f"mutant {mutant.name!r}: its target {mutant.target!r} is not in "
            f"robutler/server/{mutant.file} after {mutant.after!r}"
        )
    i = hits[0]
    lines[i] = lines[i].replace(mutant.target, mutant.replacement, 1)
    return "".join(lines)
