"""The telephony edge: Twilio webhooks in, TwiML and spooled jobs out; entry point ``webhooks.add_routes``.

Layer: edges. May import: core, services, config, errors and the base modules; never another edge.
"""
