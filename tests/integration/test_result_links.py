"""The gateway's side of notifications: webhook endpoint management and secret rotation, and `/r/{token}`.

The gateway and the notifier run together over the real broker and database;
jobs are submitted through the API and their outcome is published as the
generator would.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import httpx

from sitewright_notifier.main import create_app as notifier_app
from sitewright_runtime.links import sign_link
from tests.helpers import eventually
from tests.integration.local_servers import WebhookReceiver, verify_webhook
from tests.integration.test_gateway_api import gateway, gateway_settings
from tests.integration.test_notifier import (
    RESULT,
    TENANT,
    at_least,
    completed,
    notifier_settings,
    publish,
    remember_targets,
)


@contextlib.asynccontextmanager
async def gateway_and_notifier(kafka: str, mongo: str, unique: str) -> AsyncIterator[tuple[httpx.AsyncClient, object]]:
    settings = notifier_settings(kafka, mongo, unique)
    async with gateway(gateway_settings(kafka, mongo, unique)) as api, notifier_app(settings).running():
        yield api, settings


async def submit(api: httpx.AsyncClient, hook: str) -> str:
    r = await api.post(
        "/api/jobs", json={"url": "https://bakery.example/", "notify": [{"channel": "webhook", "target": hook}]}
    )
    assert r.status_code == 202, r.text
    job_id = r.json()["id"]
    # The generator's part, played by the tests: the job's outcome carries its URL and targets.
    remember_targets(job_id, "https://bakery.example/", ("webhook", hook))
    return job_id


async def test_a_rotated_secret_signs_beside_the_old_one_until_the_old_one_expires(kafka_bootstrap, mongo_url, unique):
    with WebhookReceiver(statuses=(204,)) as receiver:
        hook = receiver.url + "/hook"
        async with gateway_and_notifier(kafka_bootstrap, mongo_url, unique) as (api, settings):
            r = await api.post("/api/webhooks/endpoints", json={"url": hook})
            assert r.status_code == 200, r.text
            endpoint, first = r.json()["id"], r.json()["secret"]
            assert first.startswith("whsec_")
            again = (await api.post("/api/webhooks/endpoints", json={"url": hook})).json()
            assert (again["id"], again["secret"]) == (endpoint, first), "registering twice returns the same endpoint"

            async def deliver() -> None:
                job_id = await submit(api, hook)
                count = len(receiver.requests)
                await publish(settings, completed(job_id))
                await eventually(lambda: at_least(receiver.requests, count + 1), what="a webhook")

            receiver.secrets = [first]
            await deliver()

            rotated = (await api.post(f"/api/webhooks/endpoints/{endpoint}/rotate")).json()
            second = rotated["secret"]
            assert second != first and rotated["active_secrets"] == 2
            receiver.secrets = [second]  # the receiver moved to the new secret; the old one still signs meanwhile
            await deliver()

            final = (await api.post(f"/api/webhooks/endpoints/{endpoint}/rotate", params={"grace_s": 0})).json()
            third = final["secret"]
            assert final["active_secrets"] == 1
            receiver.secrets = [third]
            await deliver()

            listed = (await api.get("/api/webhooks/endpoints")).json()
            assert [e["id"] for e in listed] == [endpoint] and listed[0]["secret"] == third
            assert (await api.get("/api/webhooks/endpoints/ep_nope")).status_code == 404
            assert (await api.post("/api/webhooks/endpoints/ep_nope/rotate")).status_code == 404
            bad = await api.post("/api/webhooks/endpoints", json={"url": "file:///etc/passwd"})
            assert bad.status_code == 422 and "http:// or https://" in bad.json()["message"]

            # Endpoints belong to the tenant of the API key: another tenant neither sees nor shares them.
            assert (await api.get("/api/webhooks/endpoints", headers={"Authorization": ""})).status_code == 401
            made = await api.post("/api/admin/keys", json={"tenant": "acme", "name": "hooks"})
            acme = {"Authorization": f"Bearer {made.json()['key']}"}
            assert (await api.get("/api/webhooks/endpoints", headers=acme)).json() == []
            assert (await api.get(f"/api/webhooks/endpoints/{endpoint}", headers=acme)).status_code == 404
            theirs = (await api.post("/api/webhooks/endpoints", headers=acme, json={"url": hook})).json()
            assert theirs["id"] != endpoint and theirs["secret"] not in (first, second, third)

    assert receiver.verified == [True, True, True], "the receiver verified every delivery with the secret it held"
    one, two, three = receiver.requests
    assert len(two.headers["webhook-signature"].split(" ")) == 2
    assert verify_webhook([first], two.headers, two.body), "during the grace period the old secret still verifies"
    assert len(three.headers["webhook-signature"].split(" ")) == 1
    assert not verify_webhook([first], three.headers, three.body) and not verify_webhook(
        [second], three.headers, three.body
    )
    # A captured delivery replayed later fails: the timestamp is signed, and an old one is refused.
    stale = dict(one.headers, **{"webhook-timestamp": str(int(time.time()) - 3600)})
    assert not verify_webhook([first], stale, one.body)


async def test_the_result_link_opens_without_an_api_key_and_expired_or_tampered_links_are_refused(
    kafka_bootstrap, mongo_url, unique
):
    with WebhookReceiver(statuses=(204,)) as receiver:
        hook = receiver.url + "/hook"
        async with gateway_and_notifier(kafka_bootstrap, mongo_url, unique) as (api, settings):
            receiver.secrets = [(await api.post("/api/webhooks/endpoints", json={"url": hook})).json()["secret"]]
            job_id = await submit(api, hook)
            await publish(settings, completed(job_id))
            await eventually(lambda: at_least(receiver.requests, 1), what="the webhook")

            async def is_completed():
                return (await api.get(f"/api/jobs/{job_id}")).json()["status"] == "completed"

            await eventually(is_completed, what="the job projected as completed")

            link = urlsplit(receiver.requests[0].json()["data"]["result_url"]).path
            token = link.removeprefix("/r/")
            # A client with no credentials at all, as someone opening the link from an e-mail.
            async with httpx.AsyncClient(transport=api._transport, base_url="http://gateway") as anonymous:
                page = await anonymous.get(link)
                data = await anonymous.get(link, params={"format": "json"})
                tampered = await anonymous.get("/r/" + token[:-3] + ("AAA" if token[-3:] != "AAA" else "BBB"))
                tampered_json = await anonymous.get(
                    "/r/" + token[:-3] + ("AAA" if token[-3:] != "AAA" else "BBB"), params={"format": "json"}
                )
                secret = settings.link_secret.get_secret_value()
                expired = await anonymous.get("/r/" + sign_link(secret, job_id, TENANT, int(time.time()) - 1))
                other_tenant = await anonymous.get(
                    "/r/" + sign_link(secret, job_id, "someone-else", int(time.time()) + 60)
                )
                garbage = await anonymous.get("/r/not-a-token")

    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    html = page.text
    assert '<html lang="en">' in html and "<title>Crumb &amp; Co, sourdough bakery · Sitewright</title>" in html
    assert '<meta name="description" content="Sourdough baked daily in Leeds.">' in html
    assert "Do you deliver?" in html and "Within Leeds, daily." in html
    assert "&quot;@context&quot;: &quot;https://schema.org&quot;" in html
    assert "&lt;script&gt;" in html and "<script>" not in html, "crawled text is shown, never run"
    assert page.headers["cache-control"] == "private, no-store" and page.headers["referrer-policy"] == "no-referrer"
    assert "default-src 'none'" in page.headers["content-security-policy"]

    assert data.status_code == 200
    body = data.json()
    assert body["job"]["status"] == "completed" and body["result"]["meta"]["title"] == RESULT.meta.title
    assert body["result"]["faq"][0]["question"] == "Do you deliver?" and body["result"]["schema"]["@type"] == "Bakery"

    assert tampered.status_code == 403 and "signature does not match" in tampered.text
    assert tampered_json.status_code == 403 and "signature" in tampered_json.json()["detail"]
    assert expired.status_code == 410 and "expired" in expired.text
    assert other_tenant.status_code == 410 and RESULT.meta.title not in other_tenant.text
    assert garbage.status_code == 403 and "copied whole" in garbage.text
    for refused in (tampered, expired, other_tenant, garbage):
        assert "Do you deliver?" not in refused.text
