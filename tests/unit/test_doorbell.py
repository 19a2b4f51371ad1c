"""The doorbell publisher with fakes: fakeredis for the waiting keys, `RecordingSend` for
the broker. No server, no Celery."""
from __future__ import annotations

import importlib

import fakeredis
import pytest

from ledger.service import POST_TASK, Doorbell, RecordingSend
from ledger.settings import Settings

# Read from wherever the publisher lives (it is moving into ledger/jobs/), not hard-coded.
WAITING_KEY_SECONDS = importlib.import_module(Doorbell.__module__).WAITING_KEY_SECONDS

SETTINGS = Settings()


@pytest.fixture
def keys():
    return fakeredis.FakeRedis()


@pytest.fixture
def send():
    return RecordingSend()


def doorbell(send, keys, settings=SETTINGS) -> Doorbell:
    return Doorbell(settings, send, keys)


def messages(*partitions, settings=SETTINGS):
    return [(POST_TASK, [p], settings.queue_name(p)) for p in partitions]


class FailingKeys:
    """A Redis that is down: every command raises."""

    def set(self, *args, **kwargs):
        raise ConnectionError("redis unreachable")

    def delete(self, *names):
        raise ConnectionError("redis unreachable")


class FailOnce:
    """A broker that refuses the sends of ``partitions``, once each."""

    def __init__(self, *partitions):
        self.failing = set(partitions)
        self.sent = []

    def __call__(self, task, args, queue):
        if args[0] in self.failing:
            self.failing.discard(args[0])
            raise ConnectionError("broker unreachable")
        self.sent.append((task, list(args), queue))


def test_a_ring_sends_one_message_per_partition_to_its_queue(send, keys):
    rung = doorbell(send, keys).ring([0, 3, 15])

    assert rung == [0, 3, 15]
    assert send.sent == [(POST_TASK, [0], "ledger.post.0"), (POST_TASK, [3], "ledger.post.3"),
                         (POST_TASK, [15], "ledger.post.15")]


def test_a_partition_whose_doorbell_waits_is_not_rung_again(send, keys):
    bell = doorbell(send, keys)
    bell.ring([1, 2])

    assert bell.ring([2, 1]) == []
    assert bell.ring([1, 2, 4]) == [4]
    assert send.sent == messages(1, 2, 4)


def test_a_second_publisher_on_the_same_redis_coalesces_too(keys):
    first, second = RecordingSend(), RecordingSend()
    doorbell(first, keys).ring([5])

    assert doorbell(second, keys).ring([5]) == []
    assert first.sent == messages(5) and second.sent == []


def test_after_clear_the_partition_rings_again(send, keys):
    bell = doorbell(send, keys)
    bell.ring([1, 2])
    bell.clear(1)

    assert bell.ring([1, 2]) == [1]
    assert send.sent == messages(1, 2, 1)


def test_duplicates_in_one_call_ring_once(send, keys):
    assert doorbell(send, keys).ring([3, 3, 7, 3, 7]) == [3, 7]
    assert send.sent == messages(3, 7)


def test_duplicates_in_one_call_ring_once_without_keys(send):
    assert doorbell(send, None).ring([3, 3]) == [3]
    assert send.sent == messages(3)


def test_the_waiting_key_expires_on_its_own(send, keys):
    bell = doorbell(send, keys)
    bell.ring([6])

    key = bell.waiting_key(6)
    assert key == "ledger.post.6.waiting"
    assert 0 < keys.ttl(key) <= WAITING_KEY_SECONDS
    # Once it is gone (expired), the next submission rings.
    keys.delete(key)
    assert bell.ring([6]) == [6]


def test_a_failing_send_raises_and_unmarks_its_partition(keys):
    with pytest.raises(ConnectionError):
        doorbell(RecordingSend(fail=True), keys).ring([4])

    assert keys.exists(doorbell(None, keys).waiting_key(4)) == 0
    send = RecordingSend()
    assert doorbell(send, keys).ring([4]) == [4]
    assert send.sent == messages(4)


def test_a_failing_send_raises_without_keys():
    with pytest.raises(ConnectionError):
        doorbell(RecordingSend(fail=True), None).ring([4])


def test_a_failing_send_leaves_no_partition_marked_without_its_doorbell(keys):
    send = FailOnce(4)
    with pytest.raises(ConnectionError):
        doorbell(send, keys).ring([4, 5])

    assert doorbell(send, keys).ring([4, 5]) == [4, 5]
    assert send.sent == messages(4, 5)


def test_partitions_sent_before_a_failure_stay_marked(keys):
    send = FailOnce(5)
    with pytest.raises(ConnectionError):
        doorbell(send, keys).ring([4, 5])

    # 4's doorbell is in its queue: no need for another.
    assert send.sent == messages(4)
    assert keys.exists(doorbell(send, keys).waiting_key(4)) == 1
    assert keys.exists(doorbell(send, keys).waiting_key(5)) == 0


def test_without_keys_every_ring_sends(send):
    bell = doorbell(send, None)
    bell.ring([1])
    bell.ring([1])
    bell.clear(1)  # nothing to clear; must not fail

    assert send.sent == messages(1, 1)


def test_without_coalescing_a_ring_sends_and_leaves_the_key_alone(send, keys):
    bell = doorbell(send, keys)
    bell.ring([2])

    assert bell.ring([2, 3], coalesce=False) == [2, 3]
    assert send.sent == messages(2, 2, 3)
    assert keys.exists(bell.waiting_key(3)) == 0


def test_a_redis_that_fails_still_rings_every_time(send):
    bell = doorbell(send, FailingKeys())

    assert bell.ring([1]) == [1]
    assert bell.ring([1]) == [1]
    bell.clear(1)  # logged, not raised: the key expires anyway
    assert send.sent == messages(1, 1)


def test_the_queue_prefix_of_the_settings_is_honoured(send, keys):
    settings = Settings(queue_prefix="run42.post")
    bell = doorbell(send, keys, settings)
    bell.ring([7])

    assert send.sent == [(POST_TASK, [7], "run42.post.7")]
    assert bell.waiting_key(7) == "run42.post.7.waiting"
    assert keys.exists("run42.post.7.waiting") == 1
    assert keys.exists("ledger.post.7.waiting") == 0
    # Another deployment's prefix on the same Redis keeps its own keys.
    other = RecordingSend()
    assert doorbell(other, keys).ring([7]) == [7]
