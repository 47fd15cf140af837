"""Core: the durable job record and the Maildir-style spool that holds it until delivery."""
