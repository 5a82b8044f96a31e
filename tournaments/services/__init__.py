"""Tournament services: creation and the common window (tournaments), the standings (standings),
rounds (rounds), the beat row (schedule) and the alerts of a snapshot (alerting)."""
