"""The commit point of a partition is the lowest offset not yet finished."""

from sitewright_runtime.consumer import OffsetTracker


def test_commit_point_waits_for_the_slowest_message():
    t = OffsetTracker()
    for offset in (10, 11, 12):
        t.started(offset)
    assert t.commit_point() == 10
    t.finished(11)
    t.finished(12)
    assert t.commit_point() == 10  # 10 is still running: committing 13 would lose it on a crash
    t.finished(10)
    assert t.commit_point() == 13
    t.committed = 13
    assert t.commit_point() is None  # nothing new to commit
