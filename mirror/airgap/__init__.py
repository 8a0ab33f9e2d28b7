"""Airgap transfer: bundle format, export from a connected mirror, verified import on an offline one."""
