"""Moving voicemail from other systems into vm2mail mailboxes.

Layer: top. May import core, services and base (it runs as an admin command).
"""
