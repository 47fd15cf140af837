"""The phone menu: dial in, log in with mailbox and PIN, and work the same IMAP folders by keypad.

Layer: edges. May import: the telephony edge (TwiML, prompts, media, menu state), core, services,
config, errors and the base modules; never smtp or web.
"""
