"""reprise: crash-consistent session persistence for music bots (Python binding).

`Journal` is the blocking handle on one journal directory; `await open(path)` gives
`Reprise`, the asyncio handle over the Rust runtime (group commit across tasks); the exceptions are
`Error` and its subclasses `InvalidEvent`, `Corrupt`, `Locked`, `Fenced`, `IoError`, `Busy`,
`ReadOnly`. `Journal(path, read_only=True)` reads a journal a live writer is appending to.
`reprise.sonora` (imported on its own: `from reprise.sonora import attach, restore,
SnapshotManager`) is the py-sonora integration.
"""

from ._reprise import (
    Busy,
    Corrupt,
    Error,
    Fenced,
    InvalidEvent,
    IoError,
    Journal,
    Locked,
    ReadOnly,
    Reprise,
    Subscription,
    open,
)

__all__ = [
    "Busy",
    "Corrupt",
    "Error",
    "Fenced",
    "InvalidEvent",
    "IoError",
    "Journal",
    "Locked",
    "ReadOnly",
    "Reprise",
    "Subscription",
    "open",
]
