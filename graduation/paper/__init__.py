"""Paper trading: engine (one bar at a time), broker, accounts in the database, the tick, the
replay feed and the backtest consistency check."""
