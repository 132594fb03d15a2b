"""Everything a gateway process holds while it runs, built once by `main.create_app`."""

from __future__ import annotations

from dataclasses import dataclass

from pymongo import AsyncMongoClient

from sitewright_runtime.batch_consumer import BatchConsumer
from sitewright_runtime.kafka import Publisher
from sitewright_runtime.netguard import AddressGuard

from .config import GatewaySettings
from .readmodel.group_insert import GroupInsert
from .readmodel.store import Store
from .readmodel.writer import Projection
from .scheduler.loop import Scheduler
from .streams.hub import Hub
from .web.admission import Admission
from .web.auth import KeyStore


@dataclass
class GatewayState:
    settings: GatewaySettings
    client: AsyncMongoClient
    store: Store
    keys: KeyStore
    publisher: Publisher
    guard: AddressGuard
    projection: Projection
    projector: BatchConsumer
    scheduler: Scheduler
    hub: Hub
    admission: Admission  # 429 while too much accepted work is unfinished
    job_inserts: GroupInsert  # POST's writes of new jobs, batched
    page_inserts: GroupInsert  # and of their requests' audit pages
