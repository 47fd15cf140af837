"""Development stack: a throwaway Dovecot, demo GPG keys, a local Twilio stand-in and a call simulator.

Used by the README's demo command, ``vm2mail simulate-call`` and the test suite; never by ``serve``.

Layer: top. Development tooling: may import anything; nothing in the gateway imports it.
"""
