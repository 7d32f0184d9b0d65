"""Properties of what the brokers parse and match: ISO 8601 durations, Trigger filters, and
CloudEvents through their AMQP encoding (pika's own wire format, no server needed)."""

from __future__ import annotations

import json
import string

import pika
import pytest
from cloudevents.conversion import to_binary
from cloudevents.http import CloudEvent, from_http
from hypothesis import assume, example, given
from hypothesis import strategies as st

from eventing.broker import backoff, matches, seconds
from eventing.rabbitmq import from_message, to_message
from shared.core.registry import Delivery

# -- ISO 8601 durations ---------------------------------------------------------------------------

counts = st.integers(min_value=0, max_value=10**5)
fractions = st.integers(min_value=0, max_value=999)


@given(days=counts, hours=counts, minutes=counts, secs=counts, millis=fractions, parts=st.data())
def test_a_written_duration_parses_to_its_seconds(days, hours, minutes, secs, millis, parts):
    """Any combination of D, H, M and S parts (at least one), each written or left out."""
    include = parts.draw(st.lists(st.booleans(), min_size=4, max_size=4).filter(any))
    with_fraction = parts.draw(st.booleans())
    date = f"{days}D" if include[0] else ""
    second = f"{secs}.{millis:03d}" if with_fraction else str(secs)
    time = "".join(
        text
        for text, wanted in zip(
            (f"{hours}H", f"{minutes}M", f"{second}S"), include[1:], strict=True
        )
        if wanted
    )
    duration = "P" + date + (f"T{time}" if time else "")
    expected = (
        include[0] * days * 86400
        + include[1] * hours * 3600
        + include[2] * minutes * 60
        + include[3] * (secs + (millis / 1000 if with_fraction else 0))
    )
    assert seconds(duration) == pytest.approx(expected)


@given(st.text(alphabet="PTDHMS0123456789.,-+ WYx", max_size=12))
@example("P")
@example("PT")
@example("P1DT")
@example("PT1.2.3S")
@example("PT.5S")
@example("PT5")
@example("P1W")
def test_anything_else_is_a_value_error(text):
    """Garbage is refused with ValueError, never accepted as zero or crashing otherwise; what is
    accepted has at least one number and a T only before a time part."""
    try:
        value = seconds(text)
    except ValueError:
        return
    assert value >= 0 and text.startswith("P") and any(c.isdigit() for c in text)
    assert not text.endswith("T") and "TT" not in text
    assert text.count(".") <= 1 and not text.endswith(".")


@given(
    policy=st.sampled_from(["exponential", "linear"]),
    millis=st.integers(min_value=1, max_value=60_000),
    retry=st.integers(min_value=0, max_value=10),
)
def test_backoff_grows_as_knative_defines(policy, millis, retry):
    delivery = Delivery(backoff_policy=policy, backoff_delay=f"PT{millis / 1000}S")
    base = millis / 1000
    grown = base * 2**retry if policy == "exponential" else base * (retry + 1)
    assert backoff(delivery, retry) == pytest.approx(grown)
    assert backoff(delivery, retry + 1) > backoff(delivery, retry)


# -- Trigger filters ------------------------------------------------------------------------------

RESERVED = {"id", "source", "type", "specversion", "time", "subject", "dataschema", "data"}
RESERVED |= {"datacontenttype"}
names = st.from_regex(r"[a-z][a-z0-9]{0,19}", fullmatch=True).filter(lambda n: n not in RESERVED)
# Attribute values: any text without surrogates (not encodable) or NUL (not in a header).
values = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), min_size=1
)
json_leaves = st.none() | st.booleans() | st.integers() | st.text() | st.floats(allow_nan=False)
json_data = st.recursive(
    json_leaves,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=10,
)


@st.composite
def cloud_events(draw, with_data: bool = True) -> CloudEvent:
    attributes = {
        "type": draw(values),
        "source": draw(st.text(string.ascii_letters + "/-.", min_size=1)),
        **draw(st.dictionaries(names, values, max_size=4)),
    }
    if draw(st.booleans()):
        attributes["subject"] = draw(values)
    data = draw(st.none() | st.dictionaries(st.text(), json_data)) if with_data else None
    return CloudEvent(attributes, data)


@given(event=cloud_events(with_data=False), data=st.data())
def test_a_filter_drawn_from_the_event_matches_it(event, data):
    attributes = event.get_attributes()
    chosen = data.draw(st.lists(st.sampled_from(sorted(attributes)), unique=True))
    assert matches({name: attributes[name] for name in chosen}, event)
    assert matches({}, event)  # no filter: every event


@given(
    event=cloud_events(with_data=False),
    name=st.sampled_from(["type", "source", "task"]),
    other=values,
)
def test_one_differing_or_missing_attribute_means_no_match(event, name, other):
    assume(event.get_attributes().get(name) != other)
    assert not matches({name: other}, event)
    assert not matches({"type": event["type"], name: other}, event)
    assert not matches({"type": event["type"].upper() + "x"}, event)  # exact, case and all


# -- CloudEvents as AMQP messages -----------------------------------------------------------------


def _over_the_wire(properties: pika.BasicProperties) -> pika.BasicProperties:
    """What the receiver decodes: the properties frame as pika writes and reads it."""
    received = pika.BasicProperties()
    received.decode(b"".join(properties.encode()))
    return received


@given(event=cloud_events(), filter_names=st.lists(names, max_size=2))
def test_an_event_survives_its_amqp_message(event, filter_names):
    properties, body = to_message(event)
    received = from_message(_over_the_wire(properties), body)
    assert received.get_attributes() == event.get_attributes()
    assert json.dumps(received.data, sort_keys=True) == json.dumps(event.data, sort_keys=True)
    # What RabbitMQ matches (the headers) is the event's attributes, so routing and the
    # dispatcher's own check agree.
    headers = _over_the_wire(properties).headers
    for name in ["type", *filter_names]:
        if name in event.get_attributes():
            assert headers[name] == event[name]
    trigger = {"type": event["type"], **{n: "x" for n in filter_names}}
    assert matches(trigger, received) == matches(trigger, event)


@given(event=cloud_events(), raw=st.none() | st.binary() | st.text())
def test_an_amqp_message_is_what_the_sdk_writes_and_reads_in_binary_mode(event, raw):
    """to_message and from_message write the SDK's binary mode out by hand, at a quarter of its
    cost: the same headers and body as `to_binary`, the same event as `from_http`, for JSON
    data, bytes, text and none."""
    for sent in (event, CloudEvent(dict(event.get_attributes()), raw)):
        properties, body = to_message(sent)
        http_headers, http_body = to_binary(sent)
        assert body == (http_body or b"")
        assert properties.headers == {k.removeprefix("ce-"): v for k, v in http_headers.items()}
        received = from_message(_over_the_wire(properties), body)
        expected = from_http(http_headers, http_body)
        assert received.get_attributes() == expected.get_attributes()
        assert received.data == expected.data
