"""reprise: crash-consistent session persistence for music bots (Python binding).

`Journal` is the blocking handle on one journal directory; `await open(path)` gives
`Reprise`, the asyncio handle over the Rust runtime (group commit across tasks); the exceptions are
`Error` and its subclasses `InvalidEvent`, `Corrupt`, `Locked`, `Fenced`, `IoError`.
`reprise.sonora` (imported on its own: `from reprise.sonora import attach, restore,
SnapshotManager`) is the py-sonora integration.
"""

from ._reprise import (
    Corrupt,
    Error,
    Fenced,
    InvalidEvent,
    IoError,
    Journal,
    Locked,
    Reprise,
    Subscription,
    open,
)

__all__ = [
    "Corrupt",
    "Error",
    "Fenced",
    "InvalidEvent",
    "IoError",
    "Journal",
    "Locked",
    "Reprise",
    "Subscription",
    "open",
]
