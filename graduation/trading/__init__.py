"""Forward trading of a graduated agent, on paper or live: engine (one bar at a time), broker,
accounts in the database (``PaperAccount``, ``live=True`` for a live account; the model keeps its
name so the table and migrations stay as they are), the tick, the replay feed and the backtest
consistency check."""
