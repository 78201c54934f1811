"""Tracebacks for people: the worker's own frames, without jobdeck's and trio's.

A failed attempt's traceback is stored whole (the DLQ, the run's attempts, JSON); what
the text log and the dashboard show of it drops the frames whose file is inside the
installed jobdeck package (its demo workers aside: they are workers) or trio's (and
`outcome`'s, which trio passes a thread's result through), which say only how the
worker was called.
"""

from __future__ import annotations

import functools
import os
import re

import outcome
import trio

_FRAME = re.compile(r'(?P<indent>[ |]*?)  File "(?P<path>[^"]+)", line \d+')


@functools.cache
def _hidden_folders() -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(folders whose frames are hidden, folders inside them whose frames are kept)."""
    import jobdeck
    import jobdeck.demo_workers

    def folder(module_file: str | None) -> str:
        return os.path.dirname(os.path.abspath(module_file or "")) + os.sep

    hidden = tuple(folder(m.__file__) for m in (jobdeck, trio, outcome))
    return hidden, (folder(jobdeck.demo_workers.__file__),)


def _hidden(path: str) -> bool:
    hidden, kept = _hidden_folders()
    return path.startswith(hidden) and not path.startswith(kept)


def worker_frames(traceback: str) -> str:
    """`traceback` without the frames (and their source lines) of jobdeck and trio.

    Text that is not a traceback, and a traceback with only such frames, comes back
    as it was: there is nothing else to show.
    """
    if 'File "' not in traceback:
        return traceback
    kept: list[str] = []
    dropped = False
    skipping: str | None = None  # the indent of a hidden frame's source lines
    for line in traceback.splitlines(keepends=True):
        frame = _FRAME.match(line)
        if frame is not None:
            if _hidden(frame["path"]):
                skipping = frame["indent"] + "    "
                dropped = True
                continue
            skipping = None
        elif skipping is not None and line.startswith(skipping):
            continue
        else:
            skipping = None
        kept.append(line)
    if not dropped or not any(_FRAME.match(line) for line in kept):
        return traceback
    return "".join(kept)
