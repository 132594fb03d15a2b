"""The audit trail's pages: what readers see must not depend on where batches split the log."""

from __future__ import annotations

from datetime import timedelta

from sitewright_contracts import uuid7
from sitewright_gateway.readmodel.audit import events_of
from sitewright_gateway.readmodel.writer import _fold

from .test_projector import POLICY, story

LOG = [(e, (0, offset)) for offset, e in enumerate(story(uuid7()))]


def project_in(batches: list[list], docs: dict | None = None) -> tuple[list[dict], dict]:
    """Fold `batches` of (event, position) as the projector does; every page written, and the job documents."""
    docs, pages = dict(docs or {}), []
    for batch in batches:
        fold = _fold({LOG[0][0].job_id: batch}, docs, POLICY, timedelta(days=7))
        pages += fold.pages
        docs.update(fold.written)
    return pages, docs


def trail(pages: list[dict]) -> list[tuple]:
    return [(e["_id"], e["type"], e["offset"], e["version"], e["job"]) for e in events_of(pages)]


def test_one_batch_one_by_one_and_by_threes_give_the_same_trail_in_log_order():
    whole, _ = project_in([LOG])
    single, _ = project_in([[item] for item in LOG])
    threes, _ = project_in([LOG[i : i + 3] for i in range(0, len(LOG), 3)])
    assert len(whole) == 1 and len(single) == len(LOG)
    assert trail(whole) == trail(single) == trail(threes)
    assert [e["_id"] for e in events_of(whole)] == [e.event_id for e, _ in LOG]
    assert [e["version"] for e in events_of(whole)] == list(range(1, len(LOG) + 1))


def test_a_batch_redelivered_with_other_bounds_overlaps_its_page_but_each_event_is_seen_once():
    expected = trail(project_in([LOG])[0])
    # The first try wrote its page and died before the job write: the redelivery folds from the same document.
    lost, _ = project_in([LOG[:5]])
    again, _ = project_in([LOG])
    assert lost[0]["_id"] != again[0]["_id"]  # both pages stay
    assert trail(lost + again) == expected


def test_a_batch_redelivered_after_its_job_write_landed_keeps_each_event_as_first_recorded():
    first, docs = project_in([LOG[:5]])
    # The job write landed, the offsets were not committed: the batch comes again, now with later events.
    again, _ = project_in([LOG], docs)
    assert [e["version"] for e in again[0]["events"][:5]] == [
        docs[LOG[0][0].job_id]["version"]
    ] * 5  # duplicates, later state
    assert trail(again + first) == trail(project_in([LOG])[0])


def test_a_read_model_from_before_pages_reads_as_pages_of_one_event():
    [page], _ = project_in([LOG])
    old = [
        {
            "_id": e["event_id"],
            "job_id": page["job_id"],
            "tenant": page["tenant"],
            **{k: v for k, v in e.items() if k != "event_id"},
        }
        for e in page["events"]
    ]
    assert trail(old) == trail([page])
