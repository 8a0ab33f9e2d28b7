"""The sync engine: discover, plan and execute a run; the dependency-closure rounds; the temp-file
journal; diff files."""
