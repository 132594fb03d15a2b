"""The MongoDB client takes its write options from the URL: the embedded server's turn retryable writes off,
a replica set's keeps them and asks for majority acknowledgement."""

from __future__ import annotations

from sitewright_devstack import infra
from sitewright_runtime.mongo import connect


async def test_the_embedded_servers_url_turns_retryable_writes_off():
    client = connect(infra.mongo_url(27018))
    try:
        assert client.options.retry_writes is False
    finally:
        await client.close()


async def test_a_replica_sets_url_keeps_retryable_writes_and_majority_acknowledgement():
    client = connect("mongodb://mongo-0.mongo:27017/?replicaSet=rs0&w=majority")
    try:
        assert client.options.retry_writes is True
        assert client.write_concern.document == {"w": "majority"}
    finally:
        await client.close()
