"""The IMAP watcher: follows every mailbox folder with IDLE and reacts to what users do there."""

from vm2mail.watcher.state import FolderState, WatchEvent
from vm2mail.watcher.watcher import Watcher

__all__ = ["FolderState", "WatchEvent", "Watcher"]
