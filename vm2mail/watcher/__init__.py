"""The IMAP watcher: follows every mailbox folder with IDLE and reacts to what users do there.

Layer: core. May import: jobs, notify, services, config, errors and the base modules; never edges.
"""

from vm2mail.watcher.state import WatchEvent
from vm2mail.watcher.watcher import Watcher

__all__ = ["WatchEvent", "Watcher"]
