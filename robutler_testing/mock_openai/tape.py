"""Cassette mode's options, and choosing between recording and replaying.

Recording happens when asked (``record=True``; pytest's ``--record``; or the environment's
``ROBUTLER_RECORD=1``), against the upstream named by ``upstream=``,
``ROBUTLER_RECORD_UPSTREAM``, ``OPENAI_BASE_URL`` or else ``https://api.openai.com/v1``,
with the key in ``ROBUTLER_RECORD_API_KEY`` or ``OPENAI_API_KEY``. Otherwise the cassette
is replayed, and recording needs neither network nor key.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Union

from .cassette import Cassette, CassetteError, Scrubber
from .record import Recorder
from .replay import Player, ignore_paths

__all__ = ["DEFAULT_UPSTREAM", "CassetteOptions", "Tape", "recording_requested"]

DEFAULT_UPSTREAM = "https://api.openai.com/v1"
Tape = Union[Player, Recorder]  # noqa: UP007 - evaluated at runtime on 3.10


def recording_requested() -> bool:
    """Whether the environment asks for recording (``ROBUTLER_RECORD`` set to 1/true/yes/on)."""
    return os.environ.get("ROBUTLER_RECORD", "").strip().lower() in {"1", "true", "yes", "on"}


@dataclass(frozen=True)
class CassetteOptions:
    """What `mock_openai(cassette=...)` was given; `open()` makes the player or recorder."""

    path: Path
    record: bool | None = None
    ignore: tuple[str, ...] = ()
    scrub: tuple[str, ...] = ()
    pacing: float = 0.0
    upstream: str | None = None

    @classmethod
    def make(
        cls,
        path: str | os.PathLike[str],
        *,
        record: bool | None = None,
        ignore: Sequence[str] = (),
        scrub: Sequence[str] = (),
        pacing: bool | float = False,
        upstream: str | None = None,
    ) -> CassetteOptions:
        """Check the options at once (mistakes fail where they are made)."""
        if isinstance(ignore, str) or isinstance(scrub, str):
            raise TypeError("ignore= and scrub= take a list of strings, not one string")
        ignore_paths(ignore)
        speed = float(pacing) if not isinstance(pacing, bool) else (1.0 if pacing else 0.0)
        if speed < 0:
            raise ValueError(f"pacing= takes True/False or a factor >= 0, got {pacing!r}")
        return cls(Path(path), record, tuple(ignore), tuple(scrub), speed, upstream)

    @property
    def recording(self) -> bool:
        return recording_requested() if self.record is None else self.record

    def open(self) -> Tape:
        """The recorder (reading the upstream and key from the environment now, before the
        mock points it at itself) or the player of the loaded cassette."""
        if not self.recording:
            return Player(Cassette.load(self.path), self.ignore, self.pacing)
        env = os.environ
        upstream = (
            self.upstream
            or env.get("ROBUTLER_RECORD_UPSTREAM")
            or env.get("OPENAI_BASE_URL")
            or DEFAULT_UPSTREAM
        )
        key = env.get("ROBUTLER_RECORD_API_KEY") or env.get("OPENAI_API_KEY")
        if not key:
            raise CassetteError(
                f"recording {self.path} needs the upstream's API key in OPENAI_API_KEY "
                "(or ROBUTLER_RECORD_API_KEY)"
            )
        secrets = [key, env.get("OPENAI_ORG_ID", ""), env.get("OPENAI_PROJECT_ID", "")]
        return Recorder(Cassette(self.path), upstream, key, Scrubber(self.scrub, secrets))
