"""The phone menu: dial in, log in with mailbox and PIN, and work the same IMAP folders by keypad."""
