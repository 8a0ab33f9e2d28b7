"""mirror serve: a read-only server for web/ with PEP 691 negotiation."""
