"""Crypto service: OpenPGP encryption with gpg and the health of the keys it uses.

Layer: services. May import: config, errors and the base modules; nothing above.
"""
