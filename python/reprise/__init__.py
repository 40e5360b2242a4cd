"""reprise: crash-consistent session persistence for music bots (Python binding).

`Journal` is the blocking handle on one journal directory; the exceptions are
`Error` and its subclasses `InvalidEvent`, `Corrupt`, `Locked`, `Fenced`, `IoError`.
"""

from ._reprise import (
    Corrupt,
    Error,
    Fenced,
    InvalidEvent,
    IoError,
    Journal,
    Locked,
)

__all__ = ["Corrupt", "Error", "Fenced", "InvalidEvent", "IoError", "Journal", "Locked"]
