"""Core: the delivery pipeline (fetch, encode, compose, encrypt, append) and the jobs it decides on."""
