"""Wiring for the admissions bot: configuration, the PTB Application and the command line."""
