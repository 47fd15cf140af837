"""Twilio service: the REST API client and the recording download, with deadlines and pinned hosts."""
