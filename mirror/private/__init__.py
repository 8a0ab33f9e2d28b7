"""Private projects: distributions published from local files (``mirror add``) or uploads, not from the upstream."""
