"""SMTP ingress: voicemail e-mails from PBXs in, e-mail replies out to callers as SMS.

Layer: edges. May import: core, services, config, errors and the base modules; never another edge.
"""
