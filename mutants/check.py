"""Run inside a mutant's subprocess: the lifecycle properties against the mutated server.

`python mutants/check.py ROOT` with `ROOT` (holding the mutated `robutler/`) first on
PYTHONPATH. Prints one line: `caught <driver>: <first problem>`, `survived`, or
`error: ...`; the exit status is 1, 0 or 2.
"""

from __future__ import annotations

import os
import sys

from hypothesis import Phase


def main(root: str) -> int:
    import robutler
    from robutler.server import ServerBase

    where = os.path.realpath(robutler.__file__)
    if not where.startswith(os.path.realpath(root) + os.sep):
        print(f"error: robutler was imported from {where}, not from the mutated copy")
        return 2

    from hypothesis.stateful import run_state_machine_as_test

    from robutler_testing.lifecycle import (
        LifecycleMachine,
        LifecycleViolation,
        check_lifecycle,
        lifecycle_settings,
    )

    # the CI profile; a run stops at its first counterexample (no shrinking: it only
    # makes the report smaller, and caught is caught)
    first = {"phases": [Phase.explicit, Phase.reuse, Phase.generate], "report_multiple_bugs": False}

    def make_app() -> ServerBase:
        return ServerBase(title="mutant")

    def machine() -> None:
        bound = LifecycleMachine.bind(make_app)
        try:
            run_state_machine_as_test(bound, settings=lifecycle_settings("machine", "ci", **first))
        finally:
            bound.close()

    drivers = {
        "asgi": lambda: check_lifecycle(
            make_app, settings=lifecycle_settings("asgi", "ci", **first)
        ),
        "live": lambda: check_lifecycle(
            make_app, live=True, settings=lifecycle_settings("live", "ci", **first)
        ),
        "machine": machine,
    }
    only = os.environ.get("MUTANT_DRIVERS")
    for name, run in drivers.items():
        if only and name not in only.split(","):
            continue
        try:
            run()
        except LifecycleViolation as exc:
            problems = [
                line.strip() for line in str(exc).splitlines() if line.strip().startswith("*")
            ]
            print(f"caught {name}: {problems[0][2:] if problems else str(exc)[:200]}")
            return 1
        except Exception as exc:
            print(f"error {name}: {type(exc).__name__}: {str(exc)[:300]}")
            return 2
    print("survived")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
