"""Call routing: the pure decision, the switched state in IMAP, office hours and the PBX circuit breaker."""
