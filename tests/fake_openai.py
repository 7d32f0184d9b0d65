"""A local HTTP server that answers like OpenAI's Chat Completions API, for the real client.

Tests queue what the next calls get: a JSON answer, an HTTP error status (429, 500...), a delay
(to trip the client's timeout), an answer that is not what was asked for, or a whole reply of
their own (one that is not a Chat Completion, or one without `usage`). Unscripted, it
describes every photo as a 페트병 and, shown candidates, picks the first. Every request is kept
so tests can check what the client sent (model, detail: low, token budget).
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


def completion(content: str, model: str = "gpt-4o") -> dict[str, Any]:
    return {
        "id": "chatcmpl-test",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "finish_reason": "stop",
                "logprobs": None,
                "message": {"role": "assistant", "content": content, "refusal": None},
            }
        ],
        "usage": {"prompt_tokens": 120, "completion_tokens": 40, "total_tokens": 160},
    }


class FakeOpenAI:
    """`with FakeOpenAI() as fake:` then `fake.base_url` for OPENAI_BASE_URL."""

    def __init__(self) -> None:
        self.script: deque[tuple[str, Any]] = deque()
        self.default: tuple[str, Any] = (
            "json",
            {
                "name": "페트병",
                "material": "PET",
                "category": "무색페트병",
                "tags": [],
                "confidence": 0.9,
            },
        )
        self.requests: list[dict[str, Any]] = []
        self.delay = 0.0  # seconds every answer waits (a slow model)
        self._lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as OpenAI's API: no connect per call
            disable_nagle_algorithm = True  # the body is a second write: no 40 ms ACK wait

            def log_message(self, *_args: Any) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                body = json.loads(self.rfile.read(length) or b"{}")
                with fake._lock:
                    fake.requests.append(body)
                    kind, value = fake.script.popleft() if fake.script else fake.unscripted(body)
                if fake.delay:
                    time.sleep(fake.delay)
                if kind == "sleep":
                    time.sleep(value)
                    kind, value = "json", fake.default[1]
                if kind == "status":
                    payload = json.dumps(
                        {
                            "error": {
                                "message": f"status {value}",
                                "type": "server_error",
                                "code": None,
                            }
                        }
                    )
                    self._send(value, payload, {"retry-after-ms": "10"})
                elif kind == "reply":  # the whole body: a string as it is, else its JSON
                    self._send(200, value if isinstance(value, str) else json.dumps(value))
                elif kind == "text":  # any content, e.g. malformed JSON
                    self._send(200, json.dumps(completion(value, body.get("model", ""))))
                else:
                    content = json.dumps(value, ensure_ascii=False)
                    self._send(200, json.dumps(completion(content, body.get("model", ""))))

            def _send(self, status: int, text: str, headers: dict | None = None) -> None:
                data = text.encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.base_url = f"http://127.0.0.1:{self.server.server_port}/v1"

    def unscripted(self, body: dict[str, Any]) -> tuple[str, Any]:
        """What a model says when no test scripted it: asked to choose among candidates, it
        takes the first; asked anything else, it gives `default`."""
        asked = body.get("messages", [{}])[-1].get("content")
        if isinstance(asked, str) and asked.startswith("{") and '"candidates"' in asked:
            offered = json.loads(asked)["candidates"]
            return "json", {"guide_id": offered[0]["guide_id"] if offered else "none"}
        return self.default

    def answer(self, kind: str, value: Any, times: int = 1) -> None:
        for _ in range(times):
            self.script.append((kind, value))

    def __enter__(self) -> FakeOpenAI:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *_exc: Any) -> None:
        self.server.shutdown()
        self.server.server_close()
