"""Bar feeds: where an instrument's new bars come from after its first import.

A feed is anything with ``poll(instrument) -> FeedResult``: it fetches the bars newer than the
instrument's last stored one and stores them through the importer's validation and upsert (the
same rules as a CSV import, the same ``data_version`` bump), so the paper engine cannot tell fed
bars from imported ones. Two implementations:

- ``graduation.trading.feed.ReplayFeed``: the bundled datasets' held-back bars (``make run``);
- ``agents.market.feeds.ccxt_feed.CcxtFeed``: a crypto exchange's candles through ccxt,
  configured per instrument by a ``BarFeedConfig`` and polled by the beat row
  ``instrument:<id>:feed`` (agents.market.feeds.service, agents.services.scheduling.feeds).
"""

from dataclasses import dataclass, field
from typing import Protocol


@dataclass
class FeedResult:
    fetched: int = 0  # candles received
    created: int = 0
    updated: int = 0
    notes: list = field(default_factory=list)  # gaps, repeats, the forming bar left out
    error: str = ""  # why the poll stopped early (the bars before it are stored)

    @property
    def ok(self):
        return not self.error


class BarFeed(Protocol):
    name: str

    def poll(self, instrument) -> FeedResult:
        """Fetch and store the instrument's bars newer than its last stored one."""
        ...
