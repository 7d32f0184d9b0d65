"""The RabbitMQ-backed local broker: what eventing-rabbitmq lays out on the cluster, run locally.

With BROKER_URL set (amqp://), `growbin dev` uses this instead of the in-process LocalBroker;
the interface is the same. It declares what eventing-rabbitmq declares for a Broker and its
Triggers, named as it names them, with the broker name (BROKER_NAME) where the cluster has UIDs:

- `b.growbin.<broker>`: the Broker's durable headers exchange. `publish` (the ingress) sends
  each CloudEvent there as eventing-rabbitmq's ingress does: persistent, with publisher
  confirms, in binary content mode (every attribute an AMQP header named as the attribute,
  `type`, `source`, `id`, extensions, so the headers exchange can match them; data as the body).
- `t.growbin.<trigger>.<broker>`: a durable quorum queue per Trigger, bound to the exchange with
  the Trigger's filter attributes as binding headers and `x-match: all` (exact match only).
- a dispatcher per Trigger: consumes with prefetch = the function's concurrency, hands the
  CloudEvent to the function, acks only after it returned, retries per the Trigger's `delivery`
  while holding the message, and after the last retry publishes it to the dead-letter exchange
  with Knative's `knativeerror*` extensions, then acks.
- `b.growbin.<broker>.dlx` and `.dlq`: the dead-letter exchange (also the Trigger queues'
  `x-dead-letter-exchange`, for messages RabbitMQ itself gives up on) and its queue, whose
  consumer records each letter in the dead_letters table: `growbin dead-letters` lists them.

Every process started with the same URL and broker name consumes the same queues: competing
consumers share the work. Each thread reconnects by itself when RabbitMQ goes away; what was
delivered but not acked is redelivered, and the @event wrapper's deduplication makes that
harmless. A BlockingConnection is not thread-safe: each consumer thread has its own, handlers
ack through `add_callback_threadsafe`, and the one publisher connection belongs to a publisher
thread that the publishing threads hand their work to.

Nothing waits on RabbitMQ unbounded. pika's blocking calls have no timeout of their own: a
RabbitMQ that accepts connections and never answers (hung, or a network that drops packets)
holds a publish until the connection's heartbeat gives up. So a publishing thread waits for the
publisher thread at most PUBLISH_PATIENCE, then fails (503 from an HTTP request); the heartbeat
(HEARTBEAT, kept going between publishes by the publisher thread) then frees the publisher
thread, and consumers, whose loop services it, reconnect by it; `stack_timeout` bounds each
connection's handshake.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import itertools
import json
import queue
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

import pika
from cloudevents.exceptions import MissingRequiredFields
from cloudevents.http import CloudEvent, from_http
from pika.adapters.blocking_connection import BlockingChannel, BlockingConnection
from pika.exceptions import AMQPError, ConnectionWrongStateError

from eventing import dead_letters
from eventing.broker import matches, next_retry
from shared.core.deployment import NAMESPACE
from shared.core.errors import log_event
from shared.core.registry import Function
from shared.core.settings import settings

# Deliveries a dispatcher never finished (it died each time) before RabbitMQ gives up on one:
# a crash loop ends in the dead letters instead of going round forever.
DELIVERY_LIMIT = 10
PUBLISH_PATIENCE = 4.0  # seconds a publish may take, reconnecting included, before it fails,
# whether RabbitMQ refuses, resets or never answers: a request that emits (upload-complete)
# answers 503 within that, its job still awaiting upload; a stage that emits fails its delivery,
# which the dispatcher retries with the Trigger's backoff. It also bounds a connection's handshake.
HEARTBEAT = 5  # seconds, for every connection (it overrides the URL's): pika drops a connection
# that heard nothing in a check every HEARTBEAT + 5 s, so a hung RabbitMQ is noticed in 10-20 s
# rather than 1-2 min (RabbitMQ proposes 60 s), and RabbitMQ drops ours after ~2 x HEARTBEAT.
KEEP_INTERVAL = 1.0  # seconds between services of an idle publisher connection's heartbeats
CLOSE_PATIENCE = 10.0  # seconds close() lets running handlers finish and ack
RECONNECT_DELAY = (0.2, 3.0)  # first and longest pause between reconnection attempts
DEAD_LETTER_PREFETCH = 4
ERROR_EXTENSIONS = ("knativeerrordest", "knativeerrorcode", "knativeerrordata")
ERROR_DATA_MAX = 1024  # Knative's limit on knativeerrordata (base64 of the failure)
REPLAY_HEADER = "x-growbin-replay-of"  # the dead letter a replayed message came from
ATTEMPTS_HEADER = "x-growbin-attempts"
_TRANSIENT = (AMQPError, OSError)  # what a restarting or unreachable RabbitMQ raises

T = TypeVar("T")


class PublishTimeout(AMQPError):
    """RabbitMQ did not take a publish within PUBLISH_PATIENCE: it hangs, or the network drops
    packets. An AMQPError, so a request answers 503 (shared.core.errors)."""


@dataclass(frozen=True)
class Layout:
    """The names of everything one broker declares."""

    exchange: str
    dlx: str
    dlq: str
    queues: dict[str, str]  # function name -> its Trigger's queue


def layout(broker: str, functions: Iterable[Function]) -> Layout:
    base = f"b.{NAMESPACE}.{broker}"
    queues = {f.name: f"t.{NAMESPACE}.{f.service}.{broker}" for f in functions}
    return Layout(exchange=base, dlx=f"{base}.dlx", dlq=f"{base}.dlq", queues=queues)


# -- CloudEvents as AMQP messages (binary content mode) -------------------------------------------


def to_message(event: CloudEvent) -> tuple[pika.BasicProperties, bytes]:
    """The AMQP message eventing-rabbitmq makes of a CloudEvent: attributes as headers, data as
    the body. What the SDK's binary mode (`to_binary`) writes, written here directly: the SDK
    copies every attribute through a v1 event object and its marshaller, 21 us a message
    where this takes 6, on every hop's critical path."""
    attributes = event.get_attributes()
    headers = {
        name: value
        for name, value in attributes.items()
        if name != "datacontenttype" and value is not None
    }
    content_type = attributes.get("datacontenttype")
    if content_type:
        headers["content-type"] = content_type
    properties = pika.BasicProperties(
        headers=headers,
        content_type=content_type,
        message_id=event["id"],
        delivery_mode=pika.DeliveryMode.Persistent,
    )
    return properties, _body(event.data)


def _body(data: Any) -> bytes:
    """The body the SDK's binary mode makes of `data`: bytes as they are, anything else as JSON."""
    if data is None:
        return b""
    if isinstance(data, bytes | bytearray):
        return bytes(data)
    return json.dumps(data).encode()


def from_message(properties: pika.BasicProperties, body: bytes) -> CloudEvent:
    """The CloudEvent in an AMQP message; headers may carry a `ce-` prefix or none, as upstream
    reads them. `x-` headers are RabbitMQ's and ours, never CloudEvent attributes. Read as the
    SDK's `from_http` reads binary mode, without its detour through a v1 event object (28 us
    a delivery where this takes 7); tests/test_broker_properties.py holds the two together."""
    attributes = {}
    for name, value in (properties.headers or {}).items():
        name = name.lower()
        if name.startswith("x-"):
            continue
        if isinstance(value, bytes):
            value = value.decode()
        name = name.removeprefix("ce-")
        attributes["datacontenttype" if name == "content-type" else name] = str(value)
    if properties.content_type:
        attributes.setdefault("datacontenttype", properties.content_type)
    if "specversion" not in attributes:  # not binary mode: the body may be a whole event
        return from_http({"content-type": attributes.get("datacontenttype", "")}, body)
    if "id" not in attributes:  # the SDK would make one up, and deduplication would miss
        raise MissingRequiredFields("the message has no id header")
    return CloudEvent(attributes, _data(body))


def _data(body: bytes) -> Any:
    """The data the SDK reads from a binary-mode body: JSON if it parses, else the bytes; none
    for an empty body or an empty JSON string, as the SDK has it."""
    try:
        data = json.loads(body) if body else None
    except ValueError:  # not JSON, or not text at all (UnicodeDecodeError is a ValueError)
        return body
    return None if data == "" else data


def letter_id(queue: str, event_id: str, replay_of: str) -> str:
    """One dead letter per event, Trigger and replay: a letter redelivered is recorded once."""
    return uuid.uuid5(uuid.NAMESPACE_URL, f"growbin:dead-letter:{queue}:{event_id}:{replay_of}").hex


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value or "")


# -- the broker -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Trigger:
    function: Function
    queue: str


@dataclass(frozen=True)
class _Request:
    """Work for the publisher thread: run on the publisher channel, answered through `future`."""

    work: Callable[[BlockingChannel], Any]
    future: Future
    deadline: float  # monotonic; reconnecting stops before it
    retry: bool  # reconnect while time is left, or fail at the first error


class RabbitBroker:
    """Triggers of the given functions over RabbitMQ at `url` (BROKER_URL), under broker `name`
    (BROKER_NAME); `dispatch=False` only publishes, as the cluster's ingress does."""

    def __init__(
        self,
        functions: Iterable[Function],
        url: str | None = None,
        name: str | None = None,
        *,
        time_scale: float = 1.0,
        dispatch: bool = True,
    ) -> None:
        self.url = url or settings().broker_url
        self.name = name or settings().broker_name
        self.time_scale = time_scale  # tests shrink backoff delays; the semantics stay
        consumers = [f for f in functions if f.kind == "event"]
        self.layout = layout(self.name, consumers)
        self.triggers = [_Trigger(f, self.layout.queues[f.name]) for f in consumers]
        self._by_queue = {t.queue: t for t in self.triggers}
        self._stop = threading.Event()
        self._counting = threading.Lock()
        self._in_flight = 0  # deliveries handed to handlers here and not yet settled
        self._threads: list[threading.Thread] = []
        # The publisher connection is the publisher thread's alone; others hand it _Requests.
        self._publisher: tuple[BlockingConnection, BlockingChannel] | None = None
        self._requests: queue.SimpleQueue[_Request | None] = queue.SimpleQueue()
        self._publishing = threading.Thread(
            target=self._serve_publisher, name="amqp publisher", daemon=True
        )
        self._publishing.start()
        self._closed = False
        try:
            self._call(_nothing, retry=False)  # declares the layout; fails fast when unreachable
        except BaseException:
            self._stop_publisher()
            raise
        if dispatch:
            for trigger in self.triggers:
                concurrency = trigger.function.scaling.concurrency
                self._spawn(trigger.queue, concurrency, functools.partial(self._deliver, trigger))
            self._spawn(self.layout.dlq, DEAD_LETTER_PREFETCH, self._record)

    # -- publishing ---------------------------------------------------------------------------

    def publish(self, event: CloudEvent) -> int:
        """Send an event to the Broker's exchange; returns how many of our Triggers match it."""
        properties, body = to_message(event)
        self._send(self.layout.exchange, "", properties, body)
        matched = sum(matches(t.function.filter, event) for t in self.triggers)
        if not matched:
            log_event("info", "event_unmatched", event_type=event["type"], event_id=event["id"])
        return matched

    def replay(self, letter_id: str) -> dict[str, Any]:
        """Send a dead letter back to its own Trigger's queue (not to every matching Trigger)."""
        letter, event = dead_letters.read(letter_id)
        queue = self.layout.queues.get(letter["trigger"])
        if queue is None:
            raise KeyError(f"no trigger {letter['trigger']}")
        properties, body = to_message(event)
        properties.headers[REPLAY_HEADER] = letter_id
        self._send("", queue, properties, body, mandatory=True)
        dead_letters.mark_replayed(letter_id)
        return letter

    def _send(
        self,
        exchange: str,
        routing_key: str,
        properties: pika.BasicProperties,
        body: bytes,
        mandatory: bool = False,
    ) -> None:
        """Publish and have RabbitMQ's confirm within PUBLISH_PATIENCE, reconnecting while it is
        away; PublishTimeout when it does not answer."""

        def send(channel: BlockingChannel) -> None:
            channel.basic_publish(exchange, routing_key, body, properties, mandatory)

        self._call(send)

    def _call(self, work: Callable[[BlockingChannel], T], *, retry: bool = True) -> T:
        """Run `work` on the publisher channel in the publisher thread and wait for it at most
        PUBLISH_PATIENCE: the caller's only bound when RabbitMQ accepts and never answers."""
        if self._closed:
            raise ConnectionWrongStateError("the broker is closed")
        deadline = time.monotonic() + PUBLISH_PATIENCE
        future: Future[T] = Future()
        self._requests.put(_Request(work, future, deadline, retry))
        try:
            return future.result(timeout=max(deadline - time.monotonic(), 0))
        except TimeoutError:
            if not future.cancel() and future.done():
                return future.result()  # it finished as the wait ran out (or raised a timeout)
        # Running (stuck in a call RabbitMQ never answers) or still queued behind one: a queued
        # one is cancelled, never sent; a running one ends when the heartbeat drops the
        # connection, or completes if RabbitMQ answers first (so a publish that timed out may
        # still arrive: the event ids make a second copy harmless).
        log_event("warning", "broker_publish_timeout", patience_s=PUBLISH_PATIENCE)
        raise PublishTimeout(f"RabbitMQ did not answer within {PUBLISH_PATIENCE:g} s")

    def _serve_publisher(self) -> None:
        """The publisher thread: runs requests in turn; between them it keeps the connection's
        heartbeats going, as pika sends and checks them only while it is called."""
        while (request := self._next_request()) is not None:
            if not request.future.set_running_or_notify_cancel():
                continue  # its caller gave up waiting
            try:
                request.future.set_result(self._with_publisher(request))
            except Exception as exc:
                request.future.set_exception(exc)
        self._drop_publisher()

    def _next_request(self) -> _Request | None:
        while True:
            try:
                return self._requests.get(timeout=KEEP_INTERVAL)
            except queue.Empty:
                self._keep_publisher()

    def _keep_publisher(self) -> None:
        """Send and check heartbeats on an idle publisher connection; drop it once it is dead,
        so the next publish connects afresh instead of finding out then."""
        if self._publisher is None or not self._publisher[0].is_open:
            return
        try:
            self._publisher[0].process_data_events(time_limit=0)
        except _TRANSIENT as exc:
            log_event("warning", "broker_connection_lost", queue="publisher", error=repr(exc))
            self._drop_publisher()

    def _with_publisher(self, request: _Request) -> Any:
        """In the publisher thread: the request's work, reconnecting while RabbitMQ is away and
        time is left before its deadline."""
        delay = RECONNECT_DELAY[0]
        while True:
            try:
                return request.work(self._publisher_channel())
            except _TRANSIENT as exc:
                self._drop_publisher()
                if (
                    not request.retry
                    or time.monotonic() + delay > request.deadline
                    or self._stop.wait(delay)
                ):
                    raise
                log_event("warning", "broker_publish_retry", error=repr(exc), retry_in_s=delay)
                delay = min(delay * 2, RECONNECT_DELAY[1])

    def _publisher_channel(self) -> BlockingChannel:
        """The publisher channel (in the publisher thread); a new connection declares the
        layout."""
        if self._publisher is not None and self._publisher[1].is_open:
            return self._publisher[1]
        self._drop_publisher()
        connection = self._connect("publisher")
        try:
            channel = connection.channel()
            channel.confirm_delivery()
            self._declare(channel)
        except BaseException:
            _close(connection)
            raise
        self._publisher = (connection, channel)
        return channel

    def _drop_publisher(self) -> None:
        if self._publisher is not None:
            _close(self._publisher[0])
            self._publisher = None

    def _declare(self, channel: BlockingChannel) -> None:
        """Everything eventing-rabbitmq declares for the Broker and its Triggers; idempotent."""
        names = self.layout
        channel.exchange_declare(names.exchange, "headers", durable=True)
        channel.exchange_declare(names.dlx, "headers", durable=True)
        channel.queue_declare(names.dlq, durable=True, arguments={"x-queue-type": "quorum"})
        channel.queue_bind(names.dlq, names.dlx, arguments={"x-match": "all"})
        for trigger in self.triggers:
            channel.queue_declare(
                trigger.queue,
                durable=True,
                arguments={
                    "x-queue-type": "quorum",
                    "x-dead-letter-exchange": names.dlx,
                    "x-delivery-limit": DELIVERY_LIMIT,
                    # dead-letter at least once: RabbitMQ keeps it until the DLQ has it
                    "x-dead-letter-strategy": "at-least-once",
                    "x-overflow": "reject-publish",
                },
            )
            channel.queue_bind(
                trigger.queue,
                names.exchange,
                arguments={
                    **trigger.function.filter,
                    "x-match": "all",
                    "x-knative-trigger": trigger.function.service,  # a label, not matched
                },
            )

    # -- consuming ----------------------------------------------------------------------------

    def _spawn(self, queue: str, prefetch: int, handle: Callable[..., bool]) -> None:
        thread = threading.Thread(
            target=self._consume, args=(queue, prefetch, handle), name=f"amqp {queue}", daemon=True
        )
        thread.start()
        self._threads.append(thread)

    def _consume(self, queue: str, prefetch: int, handle: Callable[..., bool]) -> None:
        """One consumer connection at a time on `queue`, re-established whenever it drops."""
        delay = RECONNECT_DELAY[0]
        while not self._stop.is_set():
            pool = ThreadPoolExecutor(prefetch, thread_name_prefix=queue)
            running: list[Future] = []
            connection = None
            try:
                connection = self._connect(queue)
                channel = connection.channel()
                channel.basic_qos(prefetch_count=prefetch)
                channel.basic_consume(
                    queue, functools.partial(self._received, pool, running, handle, connection)
                )
                delay = RECONNECT_DELAY[0]
                while not self._stop.is_set():
                    connection.process_data_events(time_limit=0.2)
                # Closing: let running handlers finish and their acks go out.
                deadline = time.monotonic() + CLOSE_PATIENCE
                while any(not f.done() for f in running) and time.monotonic() < deadline:
                    connection.process_data_events(time_limit=0.05)
                connection.process_data_events(time_limit=0)
            except Exception as exc:  # dropped, refused, or the queue is not back yet
                log_event(
                    "warning",
                    "broker_connection_lost",
                    queue=queue,
                    error=repr(exc),
                    retry_in_s=delay,
                )
            finally:
                # This connection's handlers finish before another connection takes deliveries,
                # so a redelivered copy never runs beside its original in this process.
                pool.shutdown(wait=True)
                _close(connection)
            if self._stop.wait(delay):
                return
            delay = min(delay * 2, RECONNECT_DELAY[1])

    def _received(
        self,
        pool: ThreadPoolExecutor,
        running: list[Future],
        handle: Callable[..., bool],
        connection: BlockingConnection,
        channel: BlockingChannel,
        method: Any,
        properties: pika.BasicProperties,
        body: bytes,
    ) -> None:
        """On the consumer thread: hand the delivery to a handler thread."""
        if self._stop.is_set():
            return  # left unacked: RabbitMQ requeues it when this connection closes
        running[:] = [f for f in running if not f.done()]
        with self._counting:
            self._in_flight += 1
        running.append(
            pool.submit(
                self._settle, handle, connection, channel, method.delivery_tag, properties, body
            )
        )

    def _settle(
        self,
        handle: Callable[..., bool],
        connection: BlockingConnection,
        channel: BlockingChannel,
        tag: int,
        properties: pika.BasicProperties,
        body: bytes,
    ) -> None:
        """On a handler thread: handle a delivery, then ack it (or give it back)."""
        try:
            done = handle(connection, properties, body)
        except Exception as exc:
            log_event("error", "delivery_not_settled", error=repr(exc), exc_info=exc)
            self._stop.wait(RECONNECT_DELAY[0])  # no hot loop while a dependency is down
            done = False
        if done:
            settle = functools.partial(channel.basic_ack, tag)
        else:
            settle = functools.partial(channel.basic_nack, tag, requeue=True)
        try:
            connection.add_callback_threadsafe(settle)
        except _TRANSIENT:  # the connection is gone, and RabbitMQ redelivers what it held
            log_event("info", "ack_lost", message_id=properties.message_id)
        finally:
            with self._counting:
                self._in_flight -= 1

    def _deliver(
        self,
        trigger: _Trigger,
        connection: BlockingConnection,
        properties: pika.BasicProperties,
        body: bytes,
    ) -> bool:
        """The dispatcher: the function, its retries, then the dead-letter exchange.

        Returns True when the message may be acked, False to give it back to the queue.
        """
        function = trigger.function
        try:
            event = from_message(properties, body)
        except Exception as exc:  # eventing-rabbitmq acks what it cannot read: retrying won't help
            log_event("error", "unreadable_message", trigger=function.name, error=repr(exc))
            return True
        if not matches(function.filter, event):
            return True  # a binding left by an older filter: not this Trigger's event
        for attempt in itertools.count():
            try:
                function.handler(event)
                return True
            except Exception as exc:
                error = repr(exc)
            delay = next_retry(function, event, attempt, error, self.time_scale)
            if delay is None:
                break
            if self._stop.wait(delay) or not connection.is_open:
                return False  # it is redelivered, from the first try
        replay_of = _text((properties.headers or {}).get(REPLAY_HEADER))
        self._dead_letter(function, trigger.queue, event, attempt + 1, error, replay_of)
        return True

    def _dead_letter(
        self,
        function: Function,
        queue: str,
        event: CloudEvent,
        attempts: int,
        error: str,
        replay_of: str,
    ) -> None:
        """Publish to the dead-letter exchange what Knative sends a deadLetterSink."""
        failure = base64.b64encode(error.encode()).decode()[:ERROR_DATA_MAX]
        letter = CloudEvent(
            {
                **event.get_attributes(),
                "knativeerrordest": function.name,  # the subscriber: locally, the function
                "knativeerrorcode": "500",  # what functions-framework answers for a raise
                "knativeerrordata": failure,
            },
            event.data,
        )
        properties, body = to_message(letter)
        properties.message_id = letter_id(queue, event["id"], replay_of)
        properties.headers[ATTEMPTS_HEADER] = attempts
        self._send(self.layout.dlx, "", properties, body)

    def _record(
        self, _connection: BlockingConnection, properties: pika.BasicProperties, body: bytes
    ) -> bool:
        """The dead-letter queue's consumer: keep each letter where `growbin dead-letters` reads."""
        try:
            letter = from_message(properties, body)
        except Exception as exc:
            log_event(
                "error", "unreadable_dead_letter", error=repr(exc), headers=properties.headers
            )
            return True
        attributes = letter.get_attributes()
        headers = properties.headers or {}
        event = CloudEvent(
            {k: v for k, v in attributes.items() if k not in ERROR_EXTENSIONS}, letter.data
        )
        if "knativeerrordest" in attributes:  # our dispatcher gave up after its retries
            trigger = attributes["knativeerrordest"]
            attempts = int(headers.get(ATTEMPTS_HEADER, 0))
            error = base64.b64decode(attributes.get("knativeerrordata", "")).decode(
                errors="replace"
            )
            letter_key = properties.message_id
        else:  # RabbitMQ gave up on it: dispatchers kept dying before they could ack
            death = (headers.get("x-death") or [{}])[0]
            queue = _text(death.get("queue"))
            reason = _text(death.get("reason")) or "unknown"
            owner = self._by_queue.get(queue)
            trigger = owner.function.name if owner else queue
            attempts = DELIVERY_LIMIT + 1 if reason == "delivery_limit" else 1
            error = f"RabbitMQ dead-lettered it from {queue} ({reason}): no dispatcher finished it"
            letter_key = letter_id(queue, event["id"], _text(headers.get(REPLAY_HEADER)))
        dead_letters.record(trigger, event, attempts, error, letter_id=letter_key)
        return True

    # -- lifecycle ----------------------------------------------------------------------------

    def wait_idle(self, timeout: float = 30.0) -> bool:
        """Block until our queues are empty and nothing runs here (other processes' handlers,
        holding deliveries unacked, are not visible from here)."""
        deadline = time.monotonic() + timeout
        quiet = 0
        while time.monotonic() < deadline:
            quiet = quiet + 1 if self._idle() else 0
            if quiet == 2:  # twice in a row: a delivery cannot slip between two looks
                return True
            time.sleep(0.05)
        return False

    def _idle(self) -> bool:
        with self._counting:
            if self._in_flight:
                return False
        queues = [*self.layout.queues.values(), self.layout.dlq]

        def empty(channel: BlockingChannel) -> bool:
            return all(
                channel.queue_declare(q, passive=True).method.message_count == 0 for q in queues
            )

        try:
            return self._call(empty, retry=False)
        except _TRANSIENT:
            return False

    def close(self) -> None:
        """Stop consuming: running handlers finish and ack; what is left is redelivered."""
        self._stop.set()
        for thread in self._threads:
            thread.join(CLOSE_PATIENCE + 1)
        self._stop_publisher()  # after the consumers: their handlers may dead-letter on the way

    def _stop_publisher(self) -> None:
        """End the publisher thread, which closes its connection; a thread stuck on a hung
        RabbitMQ is not waited for beyond PUBLISH_PATIENCE (the heartbeat ends it)."""
        self._closed = True
        self._requests.put(None)
        self._publishing.join(PUBLISH_PATIENCE)

    def _connect(self, purpose: str) -> BlockingConnection:
        parameters = pika.URLParameters(self.url)
        parameters.client_properties = {"connection_name": f"growbin {self.name} {purpose}"}
        parameters.blocked_connection_timeout = PUBLISH_PATIENCE  # a resource alarm is an error
        parameters.heartbeat = HEARTBEAT
        parameters.stack_timeout = PUBLISH_PATIENCE  # TCP and AMQP handshake, a hung one included
        return pika.BlockingConnection(parameters)


def _nothing(_channel: BlockingChannel) -> None:
    """A request that only makes sure the publisher channel is there (and so the layout)."""


def _close(connection: BlockingConnection | None) -> None:
    if connection is not None and connection.is_open:
        with contextlib.suppress(_TRANSIENT):
            connection.close()
