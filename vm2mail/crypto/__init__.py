"""Crypto service: OpenPGP encryption with gpg and the health of the keys it uses."""
