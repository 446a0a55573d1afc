"""Intron's voicebot workflow API (seeds 000, 002, 003): `client.py` speaks it,
`provider.py` puts it behind the provider interface, `sandbox/` stands in for it."""
