"""Real network receivers for the SIEM tests: a syslog TCP/TLS listener (RFC 6587 octet counting) and an
HTTP Event Collector. Both run on loopback in a thread and keep what they received."""

from __future__ import annotations

import json
import socket
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class SyslogReceiver:
    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        self.messages: list[bytes] = []
        self._tls = tls
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.address = f"127.0.0.1:{self._listener.getsockname()[1]}"
        self._stop = False
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop:
            try:
                connection, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._read, args=(connection,), daemon=True).start()

    def _read(self, connection: socket.socket) -> None:
        try:
            stream = self._tls.wrap_socket(connection, server_side=True) if self._tls else connection
        except (ssl.SSLError, OSError):
            connection.close()
            return
        buffer = b""
        with stream:
            while True:
                try:
                    chunk = stream.recv(65536)
                except OSError:
                    return
                if not chunk:
                    return
                buffer += chunk
                while b" " in buffer:
                    length_text, _, rest = buffer.partition(b" ")
                    length = int(length_text)
                    if len(rest) < length:
                        break
                    self.messages.append(rest[:length])
                    buffer = rest[length:]

    def wait_for(self, count: int, timeout: float = 10) -> list[bytes]:
        deadline = threading.Event()
        for _ in range(int(timeout * 100)):
            if len(self.messages) >= count:
                break
            deadline.wait(0.01)
        return self.messages

    def close(self) -> None:
        self._stop = True
        self._listener.close()


class HecReceiver:
    """Answers 503 for the first ``fail_first`` requests, then accepts like Splunk's collector."""

    def __init__(self, token: str, fail_first: int = 0) -> None:
        self.events: list[dict[str, Any]] = []
        self.authorizations: list[str] = []
        self.fail_remaining = fail_first
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["content-length"])).decode()
                receiver.authorizations.append(self.headers.get("authorization", ""))
                if (
                    self.path != "/services/collector/event"
                    or self.headers.get("authorization") != f"Splunk {token}"
                ):
                    self._answer(401, {"text": "Invalid token", "code": 4})
                    return
                if receiver.fail_remaining > 0:
                    receiver.fail_remaining -= 1
                    self._answer(503, {"text": "Server is busy", "code": 9})
                    return
                decoder, position = json.JSONDecoder(), 0
                while position < len(body):
                    item, position = decoder.raw_decode(body, position)
                    receiver.events.append(item)
                self._answer(200, {"text": "Success", "code": 0})

            def _answer(self, status: int, payload: dict[str, Any]) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@contextmanager
def syslog_receiver(tls: ssl.SSLContext | None = None) -> Iterator[SyslogReceiver]:
    receiver = SyslogReceiver(tls)
    try:
        yield receiver
    finally:
        receiver.close()
