"""Event contracts: wire round trip, headers, decoding failures, upcasting, derived ids."""

from __future__ import annotations

import json
import uuid

import pytest

from sitewright_contracts import UndecodableEvent, decode, derived_uuid7, encode, header, uuid7, wire
from sitewright_contracts import events as ev
from sitewright_contracts.models import JobOptions, NotifyTarget


def test_every_event_round_trips_with_the_documented_headers():
    event = ev.JobRequested(
        job_id=uuid7(), data=ev.JobRequestedData(url="https://example.com/", options=JobOptions(max_pages=3))
    )
    key, value, headers = encode(event)
    assert key == event.job_id.encode()
    assert {k for k, _ in headers} == {"event-type", "event-id", "content-type", "traceparent", "priority"}
    assert header(headers, "priority") == str(event.data.priority), "a request carries its own priority"
    assert header(headers, "event-type") == "job.requested" and header(headers, "event-id") == event.event_id
    body = json.loads(value)
    assert set(body) == {
        "event_id",
        "type",
        "version",
        "job_id",
        "tenant",
        "attempt",
        "occurred_at",
        "producer",
        "data",
    }
    assert body["occurred_at"].endswith("Z")
    assert decode(value) == event


def test_every_type_has_a_model_and_ids_are_uuid7():
    assert set(ev.EVENT_TYPES) >= {
        "job.requested",
        "job.cancel_requested",
        "job.retry_requested",
        "crawl.started",
        "crawl.progress",
        "crawl.succeeded",
        "crawl.failed",
        "generation.started",
        "generation.progress",
        "parsing.started",
        "job.completed",
        "generation.failed",
        "job.failed",
        "job.cancelled",
        "notification.sent",
        "notification.failed",
    }
    assert uuid.UUID(uuid7()).version == 7
    a, b = uuid7(), uuid7()
    assert a != b


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (b"", "empty"),
        (b"{nope", "malformed_json"),
        (b"[1]", "malformed_json"),
        (b'{"type": "job.exploded", "job_id": "x"}', "unknown_type"),
        (b'{"type": "crawl.started", "job_id": "x"}', "invalid"),
    ],
)
def test_undecodable_messages_say_why(value, reason):
    with pytest.raises(UndecodableEvent) as caught:
        decode(value)
    assert caught.value.reason == reason


def test_old_versions_are_upcast_before_validation(monkeypatch):
    def v0_to_v1(raw):  # pretend version 0 called the field "reason_text"
        data = dict(raw["data"])
        data["reason"] = data.pop("reason_text")
        return {**raw, "version": 1, "data": data}

    monkeypatch.setitem(wire.UPCASTERS, ("job.cancel_requested", 0), v0_to_v1)
    raw = {"type": "job.cancel_requested", "version": 0, "job_id": "j", "data": {"reason_text": "changed my mind"}}
    event = decode(json.dumps(raw).encode())
    assert event.version == 1 and event.data.reason == "changed my mind"


def test_derived_ids_are_stable_and_sort_after_their_cause():
    cause = uuid7()
    assert derived_uuid7(cause, "crawl.started") == derived_uuid7(cause, "crawl.started")
    assert derived_uuid7(cause, "crawl.started") != derived_uuid7(cause, "crawl.failed")
    assert uuid.UUID(derived_uuid7(cause, "x")).version == 7
    assert derived_uuid7(cause, "x")[:13] == cause[:13]  # same millisecond timestamp


def test_notify_targets_are_checked_per_channel():
    NotifyTarget(channel="sms", target="+15551234567")
    for channel, target in [("webhook", "ftp://x"), ("email", "nobody"), ("sms", "555")]:
        with pytest.raises(ValueError):
            NotifyTarget(channel=channel, target=target)


def _contract_models() -> list[type]:
    from pydantic import BaseModel

    from sitewright_contracts import models

    return [
        m
        for mod in (models, ev)
        for m in vars(mod).values()
        if isinstance(m, type) and issubclass(m, BaseModel) and m.__module__ == mod.__name__
    ]


@pytest.mark.parametrize("model", _contract_models(), ids=lambda m: m.__name__)
def test_defaults_have_the_type_the_log_gives_them_back(model):
    """A default of 0 in a float field is an int in memory and 0.0 once it has been through the log:
    a job document written from the request (the gateway) and one rebuilt from the log would differ."""
    for name, field in model.model_fields.items():
        if field.annotation is float and field.default is not None and not callable(field.default_factory):
            assert isinstance(field.default, float), (
                f"{model.__name__}.{name} defaults to {field.default!r}, not a float"
            )


def test_default_options_are_the_same_document_before_and_after_the_log():
    options = JobOptions()
    again = JobOptions.model_validate_json(options.model_dump_json())
    assert json.dumps(options.model_dump(), sort_keys=True) == json.dumps(again.model_dump(), sort_keys=True)


# ---- malformed messages: every one is an UndecodableEvent, so it goes to the DLQ ----------------


def _body(**overrides: object) -> bytes:
    from sitewright_contracts import events as ev

    raw = json.loads(ev.JobCancelRequested(job_id="j1", tenant="t").model_dump_json())
    return json.dumps(raw | overrides).encode()


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (_body(version="two"), "invalid"),
        (_body(version=[1]), "invalid"),
        (_body(version=None), "invalid"),
        (_body(attempt="x"), "invalid"),
        (_body(data=[]), "invalid"),
        (b"[" * 100_000 + b"]" * 100_000, "too_deep"),
        (b'{"a":' * 5000 + b"1" + b"}" * 5000, "too_deep"),
        (b" " * (5 * 1024 * 1024), "too_large"),
        (b"\xff\xfe", "malformed_json"),
    ],
)
def test_every_malformed_body_is_undecodable_with_a_reason(value: bytes, reason: str):
    with pytest.raises(UndecodableEvent) as caught:
        decode(value)
    assert caught.value.reason == reason


def test_json_ld_that_mongodb_could_not_store_is_refused_at_decoding():
    from sitewright_contracts import events as ev
    from sitewright_contracts.models import CrawlContext, PageSummary

    page = PageSummary(url="https://a.example/")
    good = ev.CrawlSucceeded(
        job_id="j",
        tenant="t",
        data=ev.CrawlSucceededData(crawl=CrawlContext(start_url="https://a.example/", pages=[page])),
    )
    raw = json.loads(good.model_dump_json())
    deep: object = 1
    for _ in range(40):
        deep = {"a": deep}
    for json_ld in ([{"bad\u0000key": 1}], [deep]):
        raw["data"]["crawl"]["pages"][0]["json_ld"] = json_ld
        with pytest.raises(UndecodableEvent) as caught:
            decode(json.dumps(raw).encode())
        assert caught.value.reason == "invalid"


@pytest.mark.parametrize(
    "target",
    ["a@x.com,b@y.org", "a@x.com b@y.org", "owner@bakery.example\r\nBcc: all@victims.example", "owner@", "@x.com"],
)
def test_an_email_target_is_exactly_one_address(target: str):
    with pytest.raises(ValueError, match="one e-mail address"):
        NotifyTarget(channel="email", target=target)


def test_a_valid_email_target_is_kept():
    assert NotifyTarget(channel="email", target="owner@bakery.example").target == "owner@bakery.example"
