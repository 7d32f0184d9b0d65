"""A TCP proxy that fails on command, between the app and a real server the suite shares.

Colleagues' tests use the same PostgreSQL and Redis, so an outage is never made by stopping
them: the app is pointed at a `FaultyProxy` instead, and the proxy fails in the ways a
dependency does.

- `cut()`: the server is down. The listening socket closes (new connections are refused) and
  every open connection is reset.
- `blackhole()`: the server hangs, or the network swallows packets. Connections are still
  accepted but nothing is answered, and bytes on open connections stop moving (they wait,
  unread, as TCP would hold them).
- `restore()`: back to relaying; held connections resume, the ones accepted while
  blackholed are reset (in a real partition they were never made).
"""

from __future__ import annotations

import contextlib
import select
import socket
import struct
import threading
import time
from urllib.parse import urlsplit, urlunsplit

PASS, CUT, BLACKHOLE = "pass", "cut", "blackhole"
_TICK = 0.05  # seconds between looks at the mode


def _reset(sock: socket.socket) -> None:
    """Close with an RST, as a server that died does, rather than a polite FIN.

    Shut down first: a pump thread may be waiting on the socket in select(), and the kernel
    holds a bare close() until that wait ends (up to a tick), while the peer would see the
    connection still open. A server that dies closes its connections at once."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    with contextlib.suppress(OSError):
        sock.close()


class FaultyProxy:
    def __init__(self, host: str, port: int) -> None:
        self.upstream = (host, port)
        self.mode = PASS
        self._lock = threading.Lock()
        self._links: list[tuple[socket.socket, socket.socket]] = []
        self._held: list[socket.socket] = []  # accepted while blackholed, never answered
        self._stopped = False
        self._listener: socket.socket | None = None
        self.port = self._listen(0)
        self._acceptor = threading.Thread(target=self._accept, name="faulty-proxy", daemon=True)
        self._acceptor.start()

    # -- control ------------------------------------------------------------------------------

    def cut(self) -> None:
        with self._lock:
            self.mode = CUT
            listener, self._listener = self._listener, None
            links, self._links = self._links, []
            held, self._held = self._held, []
        if listener is not None:
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)  # stops listening even mid-accept()
            listener.close()
        for client, server in links:
            _reset(client)
            _reset(server)
        for client in held:
            _reset(client)

    def blackhole(self) -> None:
        with self._lock:
            self.mode = BLACKHOLE

    def restore(self) -> None:
        with self._lock:
            if self._listener is None:
                self._listen(self.port)
            self.mode = PASS
            held, self._held = self._held, []
        for client in held:
            _reset(client)

    def stop(self) -> None:
        self._stopped = True
        self.cut()

    def url(self, url: str) -> str:
        """`url` with its host and port replaced by this proxy's."""
        parts = urlsplit(url)
        netloc = parts.netloc.rsplit("@", 1)
        address = f"127.0.0.1:{self.port}"
        netloc = f"{netloc[0]}@{address}" if len(netloc) == 2 else address
        return urlunsplit(parts._replace(netloc=netloc))

    # -- relaying -----------------------------------------------------------------------------

    def _listen(self, port: int) -> int:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        deadline = time.monotonic() + 2
        while True:  # the same port again on restore: it is in the app's URL
            try:
                listener.bind(("127.0.0.1", port))
                break
            except OSError:
                if not port or time.monotonic() > deadline:
                    raise
                time.sleep(_TICK)  # the old listener is still being torn down
        listener.listen(64)
        listener.settimeout(_TICK)
        self._listener = listener
        return listener.getsockname()[1]

    def _accept(self) -> None:
        while not self._stopped:
            listener = self._listener
            if listener is None:
                time.sleep(_TICK)
                continue
            try:
                client, _ = listener.accept()
            except (TimeoutError, OSError):
                continue
            client.settimeout(None)
            with self._lock:
                mode = self.mode
                if mode == BLACKHOLE:
                    self._held.append(client)
                    continue
            if mode == CUT:
                _reset(client)
                continue
            try:
                server = socket.create_connection(self.upstream, timeout=5)
            except OSError:
                _reset(client)
                continue
            server.settimeout(None)
            with self._lock:
                self._links.append((client, server))
            for source, target in ((client, server), (server, client)):
                threading.Thread(
                    target=self._pump, args=(source, target), name="faulty-pump", daemon=True
                ).start()

    def _pump(self, source: socket.socket, target: socket.socket) -> None:
        try:
            while True:
                readable, _, _ = select.select([source], [], [], _TICK)
                if self.mode == BLACKHOLE:
                    time.sleep(_TICK)  # leave the bytes unread: nothing moves, nothing is lost
                    continue
                if not readable:
                    continue
                data = source.recv(65536)
                if not data:
                    break
                target.sendall(data)
        except (OSError, ValueError):
            pass  # reset by cut() or by the other side
        finally:
            _reset(source)
            _reset(target)


def proxied(url: str) -> FaultyProxy:
    """A proxy in front of the server `url` names."""
    parts = urlsplit(url)
    return FaultyProxy(parts.hostname or "127.0.0.1", parts.port or _DEFAULT_PORTS[parts.scheme])


_DEFAULT_PORTS = {"postgresql": 5432, "postgres": 5432, "redis": 6379, "amqp": 5672}
