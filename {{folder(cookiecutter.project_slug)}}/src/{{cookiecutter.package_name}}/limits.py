"""The process's limit on open files, raised at start-up so that connections, not the limit, run out last."""

from __future__ import annotations

import sys


def raise_open_files_limit() -> None:
    """Raise the soft limit on open files to the hard one (POSIX; Windows has no such limit).

    Every connection holds a descriptor: under a soft limit of 256 (macOS's default, some containers') a few
    hundred idle or slow clients would leave none for the next one, and /health would fail with them.
    """
    if sys.platform != "win32":
        import resource

        _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
