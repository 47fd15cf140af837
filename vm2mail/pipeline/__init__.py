"""The delivery pipeline (fetch, encode, compose, encrypt, append) and the jobs it decides on.

Layer: core. May import: jobs, services (mailstore, crypto, audio, twilioapi, signing), config, errors
and the base modules; never edges.
"""
