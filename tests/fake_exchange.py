"""A local fake of Binance's public spot REST API, enough for ccxt's load_markets and fetch_ohlcv.

Serves ``GET /api/v3/exchangeInfo`` (one market, BTC/USDT) and ``GET /api/v3/klines`` (the
candles in ``server.candles``, filtered by startTime and limit as Binance does). ``server.faults``
is a list consumed one per klines request: ``"429"`` (with Retry-After), ``"timeout"`` (sleeps
longer than the client waits), ``"502"`` (an HTML error page), or None for a normal answer. Every request is recorded in
``server.requests``. Point a feed at it with ``api_base_url = server.url``.
"""

import contextlib
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

MARKET = {
    "symbol": "BTCUSDT", "status": "TRADING", "baseAsset": "BTC", "quoteAsset": "USDT",
    "baseAssetPrecision": 8, "quoteAssetPrecision": 8, "quotePrecision": 8, "baseCommissionPrecision": 8,
    "quoteCommissionPrecision": 8, "orderTypes": ["LIMIT", "MARKET"], "icebergAllowed": True,
    "ocoAllowed": True, "isSpotTradingAllowed": True, "isMarginTradingAllowed": False,
    "filters": [
        {"filterType": "PRICE_FILTER", "minPrice": "0.01", "maxPrice": "1000000.00", "tickSize": "0.01"},
        {"filterType": "LOT_SIZE", "minQty": "0.00001", "maxQty": "9000.0", "stepSize": "0.00001"},
    ],
    "permissions": ["SPOT"], "permissionSets": [["SPOT"]],
}


def kline(open_ms, o, h, lo, c, v, step_ms=3_600_000):
    """A Binance kline row: strings for prices, as the real API sends them."""
    return [open_ms, str(o), str(h), str(lo), str(c), str(v), open_ms + step_ms - 1, "0", 10, "0", "0", "0"]


class FakeExchange(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.candles = []
        self.faults = []
        self.requests = []
        self.timeout_sleep = 1.5
        self.lock = threading.Lock()

    @property
    def url(self):
        return f"http://127.0.0.1:{self.server_address[1]}"

    def start(self):
        threading.Thread(target=self.serve_forever, daemon=True).start()
        return self

    def stop(self):
        self.shutdown()
        self.server_close()


class _Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):  # quiet
        pass

    def _json(self, status, body, headers=None):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            self.wfile.write(data)

    def do_GET(self):
        server = self.server
        parts = urlsplit(self.path)
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        with server.lock:
            server.requests.append((parts.path, query))
        if parts.path == "/api/v3/exchangeInfo":
            return self._json(200, {"timezone": "UTC", "serverTime": int(time.time() * 1000), "rateLimits": [],
                                    "symbols": [MARKET]})
        if parts.path != "/api/v3/klines":
            return self._json(404, {"code": -1, "msg": f"fake exchange: no route {parts.path}"})
        with server.lock:
            fault = server.faults.pop(0) if server.faults else None
        if fault == "429":
            return self._json(429, {"code": -1003, "msg": "Too many requests"}, {"Retry-After": "2"})
        if fault == "502":  # a proxy in front of the exchange, as during an outage
            body = b"<html><body>502 Bad Gateway</body></html>"
            self.send_response(502)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return None
        if fault == "timeout":
            time.sleep(server.timeout_sleep)
        start = int(query.get("startTime", 0))
        limit = int(query.get("limit", 500))
        rows = [c for c in server.candles if not isinstance(c[0], int) or c[0] >= start][:limit]
        return self._json(200, rows)
