"""Pure planning computations on a CT volume: no network, no database, no files."""
