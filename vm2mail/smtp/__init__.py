"""SMTP ingress: voicemail e-mails from PBXs in, e-mail replies out to callers as SMS."""
