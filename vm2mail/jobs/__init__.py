"""The durable job record and the Maildir-style spool that holds it until delivery.

Layer: core. May import: services, config, errors and the base modules; never edges.
"""
