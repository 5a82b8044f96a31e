"""A local HTTP server that answers like the Messages API, for tests across processes.

The real `anthropic` SDK (and a real Celery worker) talk to it over loopback through
ANTHROPIC_BASE_URL: the HTTP transport is the one seam that is faked.
"""

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def message(candidates, *, input_tokens=1200, output_tokens=300, model="claude-sonnet-4-6"):
    return {
        "id": "msg_fake",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [{"type": "text", "text": json.dumps({"candidates": candidates})}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {"input_tokens": input_tokens, "output_tokens": output_tokens},
    }


def api_error(status, error_type, text):
    return status, {"type": "error", "error": {"type": error_type, "message": text}}


def sma_candidates(pairs):
    return [
        {"params": {"fast": f, "slow": s, "long_only": True, "stop_loss": 0.0, "take_profit": 0.0},
         "rationale": f"try {f}/{s}"}
        for f, s in pairs
    ]


class FakeAnthropic:
    """Replies in order (the last repeats): (status, json body) or (status, body, delay_seconds)."""

    def __init__(self, *replies):
        self.replies = list(replies)
        self.requests = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                length = int(self.headers.get("content-length", 0))
                fake.requests.append({"path": self.path, "headers": dict(self.headers),
                                      "body": json.loads(self.rfile.read(length) or b"{}")})
                reply = fake.replies[min(len(fake.requests), len(fake.replies)) - 1]
                status, body, *delay = reply
                if delay:
                    time.sleep(delay[0])
                payload = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("retry-after-ms", "1")
                self.send_header("content-length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()
