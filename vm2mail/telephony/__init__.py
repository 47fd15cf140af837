"""The telephony edge: Twilio webhooks in, TwiML and spooled jobs out; entry point ``webhooks.add_routes``."""
