"""Moving voicemail from other systems into vm2mail mailboxes."""
