"""Call routing: the pure decision, the switched state in IMAP, office hours and the PBX circuit breaker.

Layer: core. May import: notify, jobs, services (mailstore, twilioapi), config, errors and the base
modules; never edges.
"""
