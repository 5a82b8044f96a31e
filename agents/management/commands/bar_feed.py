"""Point an instrument at an exchange's candles (ccxt), turn its feed on or off, poll it now, list feeds."""

import json
from datetime import UTC

from django.core.management.base import BaseCommand, CommandError
from django.utils.dateparse import parse_datetime

from agents.market.feeds import service
from agents.market.models import BarFeedConfig, Instrument
from core.errors import ServiceError


class Command(BaseCommand):
    help = (
        "Bar feeds from crypto exchanges through ccxt. `set SYMBOL --exchange binance --market BTC/USDT` creates "
        "or changes the instrument's feed and its beat row (instrument:<id>:feed); `enable`/`disable`/`remove "
        "SYMBOL`; `poll SYMBOL` fetches now and prints what came; `list` shows every feed and its last outcome."
    )

    def add_arguments(self, parser):
        parser.add_argument("action", choices=["set", "enable", "disable", "remove", "poll", "list"])
        parser.add_argument("symbol", nargs="?", help="instrument symbol (not for list)")
        parser.add_argument("--exchange", help="ccxt exchange id, e.g. binance, kraken, coinbase, bitstamp")
        parser.add_argument("--market", help="the exchange's market symbol, e.g. BTC/USDT")
        parser.add_argument("--timeframe", help="ccxt timeframe (default: the instrument's bar interval)")
        parser.add_argument("--poll-seconds", type=int, default=60, help="poll interval (default 60)")
        parser.add_argument("--start", help="first bar to fetch when the instrument has none (ISO datetime, UTC)")
        parser.add_argument("--api-base-url", default="", help="replace the exchange's API host (testnet, proxy)")
        parser.add_argument("--option", action="append", default=[], metavar="KEY=JSON",
                            help="a ccxt exchange option, e.g. fetchMarkets='{\"types\": [\"spot\"]}'")
        parser.add_argument("--disabled", action="store_true", help="with set: configure but do not poll yet")

    def handle(self, *args, action, symbol, **opts):
        if action == "list":
            return self._list()
        if not symbol:
            raise CommandError(f"{action}: an instrument symbol is required")
        instrument = Instrument.objects.filter(symbol=symbol).first()
        if instrument is None:
            raise CommandError(f"symbol: unknown instrument {symbol!r}; import its history first (import_prices)")
        try:
            if action == "set":
                config = service.feed_configure(instrument, **self._settings(opts))
                self.stdout.write(self.style.SUCCESS(
                    f"{symbol}: feed {config.exchange} {config.market_symbol} {config.timeframe} every "
                    f"{config.poll_seconds} s, {'enabled' if config.enabled else 'disabled'}."))
            elif action in ("enable", "disable"):
                service.feed_set_enabled(instrument, action == "enable")
                self.stdout.write(f"{symbol}: feed {action}d.")
            elif action == "remove":
                removed = service.feed_remove(instrument)
                self.stdout.write(f"{symbol}: feed removed." if removed else f"{symbol}: had no feed.")
            else:
                self._poll(instrument)
        except ServiceError as exc:
            raise CommandError("\n".join(f"{field}: {rule}" for field, rule in exc.errors.items()))

    def _settings(self, opts):
        errors = []
        if not opts["exchange"]:
            errors.append("--exchange: required, e.g. binance")
        options = {}
        for item in opts["option"]:
            key, sep, raw = item.partition("=")
            try:
                options[key.strip()] = json.loads(raw) if sep else None
            except json.JSONDecodeError as exc:
                errors.append(f"--option {item!r}: the value is not JSON ({exc.msg})")
            if not sep or not key.strip():
                errors.append(f"--option {item!r}: expected KEY=JSON")
        start = None
        if opts["start"]:
            start = parse_datetime(opts["start"]) or parse_datetime(f"{opts['start']}T00:00:00+00:00")
            if start is None:
                errors.append(f"--start: cannot parse {opts['start']!r} as an ISO datetime")
            elif start.tzinfo is None:
                start = start.replace(tzinfo=UTC)
        if errors:
            raise CommandError("\n".join(errors))
        return {"exchange": opts["exchange"], "market_symbol": opts["market"], "timeframe": opts["timeframe"],
                "poll_seconds": opts["poll_seconds"], "enabled": not opts["disabled"], "start_at": start,
                "api_base_url": opts["api_base_url"], "ccxt_options": options}

    def _poll(self, instrument):
        self.stdout.write(f"{instrument.symbol}: polling...")
        summary = service.poll_feed(instrument.pk)
        if "skipped" in summary:
            raise CommandError(f"{instrument.symbol}: {summary['skipped']} (bar_feed enable {instrument.symbol})")
        for note in summary.get("notes", []):
            self.stdout.write(f"  {note}")
        line = (f"{instrument.symbol}: {summary.get('fetched', 0)} candles fetched, {summary.get('created', 0)} "
                f"bars created, {summary.get('updated', 0)} updated")
        if summary.get("error"):
            raise CommandError(f"{line}; stopped: {summary['error']}")
        self.stdout.write(self.style.SUCCESS(line + "."))

    def _list(self):
        rows = BarFeedConfig.objects.select_related("instrument").order_by("instrument__symbol")
        if not rows:
            self.stdout.write("No bar feeds. Add one with: manage.py bar_feed set SYMBOL --exchange ... --market ...")
            return
        header = ("symbol", "exchange", "market", "tf", "every", "on", "imported", "last poll", "last error")
        table = [header] + [
            (r.instrument.symbol, r.exchange, r.market_symbol, r.timeframe, f"{r.poll_seconds}s",
             "yes" if r.enabled else "no", str(r.bars_imported),
             r.last_polled_at.strftime("%Y-%m-%d %H:%M") if r.last_polled_at else "-", (r.last_error or "-")[:60])
            for r in rows
        ]
        widths = [max(len(row[i]) for row in table) for i in range(len(header))]
        for row in table:
            self.stdout.write("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
