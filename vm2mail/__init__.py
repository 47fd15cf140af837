"""vm2mail: calls that nobody answers become encrypted voicemails in the user's IMAP folder."""

__version__ = "0.1.0"
