"""Twilio service: the REST API client and the recording download, with deadlines and pinned hosts.

Layer: services. May import: config, errors and the base modules; nothing above.
"""
