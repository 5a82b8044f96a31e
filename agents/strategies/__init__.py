"""Strategy templates live in code. `registry` holds them by key."""
