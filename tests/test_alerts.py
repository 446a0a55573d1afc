"""`POST /alerts/{token}`: Alertmanager and Grafana webhooks that start and stop escalations.

Reading is checked against real payloads (tests/data/alerts/, in the shapes of the
upstream projects' webhook code and docs); the route end to end: real HTTP POSTs to the
app on a socket, the worker placing the first step's call with the sandbox, the fake
Slack recording the escalation's parent message as it is posted and edited.
"""

from __future__ import annotations

import asyncio
import copy
import json
import sqlite3
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from bot.core.policies import Policy, PolicyStep, new_policy_id
from bot.input.alerts import TOKEN_KEY, BadAlert, read_alert, webhook_url
from bot.logsafety import redact
from bot.providers.intron.models import WorkflowCreate
from bot.web.alerts import ALERT_BODY_LIMIT
from tests.conftest import NUMBER, Sandbox
from tests.harness import Harness
from tests.support.fake_slack import FakeSlack
from tests.support.slack_requests import app_home_opened

DATA = Path(__file__).parent / "data" / "alerts"
TOKEN = "alert-test-token-5b1f0e"
CHANNEL = "C1"
ON_CALL = WorkflowCreate(
    name="On-call alert",
    message="Alert for [policy]: [message]. Press 1 to acknowledge, 2 to pass it on.",
    include_reply=True,
    response_options={"1": "Acknowledge", "2": "Pass"},
)
# Answered, no key pressed (sandbox outcome table): the step waits for its result.
FIRST_STEP = NUMBER.format(3)


def payload(name: str) -> dict[str, Any]:
    return json.loads((DATA / f"{name}.json").read_text())


# ================================================================ reading the payloads


def test_an_alertmanager_notification_is_one_group_with_its_text() -> None:
    group = read_alert((DATA / "alertmanager-firing.json").read_bytes())
    assert group.source == "alertmanager" and group.status == "firing"
    assert group.group_key == 'alertmanager:{}/{severity="critical"}:{alertname="HighErrorRate"}'
    assert group.policy is None  # this one names its policy in the URL
    assert group.message == (
        "HighErrorRate: More than 5% of API requests fail "
        "(severity critical, instance api-1:9100 and 1 more, job api, 2 alerts firing)"
    )
    resolved = read_alert((DATA / "alertmanager-resolved.json").read_bytes())
    assert resolved.status == "resolved" and resolved.group_key == group.group_key


def test_a_grafana_notification_names_its_policy_by_label() -> None:
    group = read_alert((DATA / "grafana-firing.json").read_bytes())
    assert group.source == "grafana" and group.by == "Grafana"
    assert group.group_key.startswith('grafana:{}/{team="payments"}:')
    assert group.policy == "Payments on-call"
    assert group.message == "Checkout latency: Checkout is slow (severity page)"
    resolved = read_alert((DATA / "grafana-resolved.json").read_bytes())  # values: null
    assert resolved.status == "resolved" and resolved.group_key == group.group_key


def test_null_maps_and_unknown_fields_are_read() -> None:
    """Go writes a nil map as null; a newer Alertmanager may add fields."""
    body = payload("alertmanager-firing")
    body |= {"commonAnnotations": None, "groupLabels": None, "routeLabels": {"a": "b"}}
    body["alerts"][0]["annotations"] = None
    body["alerts"][1]["annotations"] = None
    group = read_alert(json.dumps(body))
    assert group.message.startswith("HighErrorRate (severity critical")


def test_a_truncated_group_counts_its_truncated_alerts() -> None:
    body = payload("alertmanager-firing") | {"truncatedAlerts": 40}
    group = read_alert(json.dumps(body))
    assert group.alert_count == 42 and "42 alerts firing" in group.message


@pytest.mark.parametrize(
    ("body", "status", "names"),
    [
        (b"{oops", 400, ["not JSON"]),
        (b"[1, 2]", 400, ["JSON array", "not an object"]),
        (b"[" * 100_000, 400, ["nested too deep"]),
        (b'{"text": "deploy finished"}', 422, ["'version' is missing", 'version "4"']),
        (b'{"version": "3", "alerts": []}', 422, ["'version' is '\"3\"'", "Grafana"]),
    ],
)
def test_a_body_that_is_neither_format_is_refused_naming_what_is_wrong(
    body: bytes, status: int, names: list[str]
) -> None:
    with pytest.raises(BadAlert) as refused:
        read_alert(body)
    assert refused.value.status == status
    for name in names:
        assert name in refused.value.message, refused.value.message


def test_a_bad_field_is_named_with_its_value() -> None:
    body = payload("alertmanager-firing") | {"status": "burning"}
    del body["groupKey"]
    body["alerts"][1]["labels"] = {"alertname": 5}
    with pytest.raises(BadAlert) as refused:
        read_alert(json.dumps(body))
    message = refused.value.message
    assert refused.value.status == 422 and "Alertmanager" in message
    assert "field 'groupKey' is missing" in message
    assert "field 'status' is 'burning'" in message and "'firing' or 'resolved'" in message
    assert "alerts.1.labels.alertname" in message


def test_a_legacy_grafana_alert_is_refused_saying_what_to_use() -> None:
    with pytest.raises(BadAlert) as refused:
        read_alert((DATA / "grafana-legacy.json").read_bytes())
    assert refused.value.status == 422 and "unified alerting" in refused.value.message


# ================================================================ the route, end to end


@pytest.fixture
async def app(tmp_path: Path, fake_slack: FakeSlack, sandbox: Sandbox) -> AsyncIterator[Harness]:
    # The sandbox reports each call's result 1.5 s after it is placed, so that the
    # first step is still waiting while the test sends the group again.
    sandbox.state.config.callback_delay = 1.5
    harness = Harness(tmp_path, fake_slack, sandbox, overrides={"alert_webhook_token": TOKEN})
    await harness.start()
    yield harness
    await harness.stop()


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(trust_env=False, timeout=10) as client:
        yield client


async def add_policy(app: Harness, name: str = "Payments on-call", **extra: Any) -> Policy:
    workflow = await app.create_workflow(ON_CALL)
    policy = Policy(
        id=new_policy_id(),
        name=name,
        channel=CHANNEL,
        workflow=workflow.id,
        steps=[PolicyStep(call=FIRST_STEP, wait=30), PolicyStep(call=NUMBER.format(4), wait=30)],
        **extra,
    )
    app.store.policies.put(policy)
    return policy


def alert_url(app: Harness, token: str = TOKEN, policy: str | None = None) -> str:
    return webhook_url(app.url, token, policy)


def stored(app: Harness) -> tuple[int, int]:
    """Escalations and jobs in the database."""
    db = app.store.db
    escalations = db.execute("SELECT COUNT(*) FROM escalations").fetchone()[0]
    return escalations, len(app.store.jobs.pending())


async def test_a_wrong_token_is_404_and_stores_nothing(
    app: Harness, http: httpx.AsyncClient
) -> None:
    await add_policy(app)
    before = stored(app)
    body = payload("alertmanager-firing")
    for token in ("not-the-token", TOKEN[:-1], TOKEN + "x"):
        answer = await http.post(alert_url(app, token, "Payments on-call"), json=body)
        assert answer.status_code == 404 and answer.json() == {"error": "not found"}
    assert stored(app) == before
    assert app.box is not None and not app.box.state.calls


async def test_refusals_name_what_is_wrong_and_store_nothing(
    app: Harness, http: httpx.AsyncClient
) -> None:
    await add_policy(app)
    before = stored(app)
    url = alert_url(app, policy="Payments on-call")
    answer = await http.post(url, content=b"alert: yes")
    assert answer.status_code == 400 and "not JSON" in answer.json()["error"]
    answer = await http.post(url, json={"text": "<!channel> deploy finished"})
    assert answer.status_code == 422 and "'version' is missing" in answer.json()["error"]
    broken = payload("grafana-firing") | {"alerts": []}
    answer = await http.post(url, json=broken)
    assert answer.status_code == 422
    assert "Grafana" in answer.json()["error"] and "'alerts'" in answer.json()["error"]
    # Firing, but naming no policy at all.
    answer = await http.post(alert_url(app), json=payload("alertmanager-firing"))
    assert answer.status_code == 422
    assert "?policy=" in answer.json()["error"] and "robocall_policy" in answer.json()["error"]
    # Larger than the limit: refused before it is read.
    huge = b'{"version": "4", "pad": "' + b"x" * ALERT_BODY_LIMIT + b'"}'
    answer = await http.post(url, content=huge)
    assert answer.status_code == 413
    assert stored(app) == before


async def test_an_unknown_policy_is_404_naming_it(app: Harness, http: httpx.AsyncClient) -> None:
    await add_policy(app)
    before = stored(app)
    answer = await http.post(
        alert_url(app, policy="Databse on-call"), json=payload("alertmanager-firing")
    )
    assert answer.status_code == 404
    error = answer.json()["error"]
    assert "'Databse on-call'" in error and "query parameter policy" in error
    assert "'Payments on-call'" in error  # what would be right
    grafana = payload("grafana-firing")
    grafana["commonLabels"]["robocall_policy"] = "Nobody"
    answer = await http.post(alert_url(app), json=grafana)
    error = answer.json()["error"]
    assert answer.status_code == 404
    assert "'Nobody'" in error and "label robocall_policy" in error
    assert stored(app) == before


async def wait_for(predicate: Any, timeout: float = 5.0) -> Any:
    async with asyncio.timeout(timeout):
        while not (found := predicate()):
            await asyncio.sleep(0.02)
    return found


def parent_text(app: Harness, escalation_id: str) -> str:
    """The parent message as it reads now: the last edit, or the post."""
    ts = app.store.escalations.message_ts(escalation_id)
    assert ts, "no parent message yet"
    edits = app.fake.updates(CHANNEL, ts)
    posted = [m for m in app.fake.messages(CHANNEL) if not m.params.get("thread_ts")]
    last = edits[-1] if edits else next(m for m in posted if escalation_id in m.all_text())
    return last.all_text()


async def test_an_alertmanager_group_firing_again_and_resolved(
    app: Harness, http: httpx.AsyncClient
) -> None:
    await add_policy(app)
    assert app.box is not None
    url = alert_url(app, policy="payments ON-CALL")  # any case
    answer = await http.post(url, json=payload("alertmanager-firing"))
    assert answer.status_code == 200, answer.text
    first = answer.json()
    assert first["created"] is True and first["policy"] == "Payments on-call"
    escalation_id = first["escalation"]
    # The first step is called, with the alert's text, and the channel shows it.
    call = await wait_for(lambda: next(iter(app.box.state.calls.values()), None))
    assert call.phone_number == FIRST_STEP
    assert "HighErrorRate: More than 5% of API requests fail" in call.workflow_variables["message"]
    await wait_for(lambda: app.store.escalations.message_ts(escalation_id))
    assert "HighErrorRate" in parent_text(app, escalation_id)
    # The same group again (Alertmanager's group_interval, repeat_interval): nothing new.
    again = payload("alertmanager-firing")
    again["alerts"][0]["annotations"]["summary"] = "Now 9% of requests fail"
    answer = await http.post(url, json=again)
    assert answer.status_code == 200
    assert answer.json()["created"] is False and answer.json()["escalation"] == escalation_id
    assert "already running" in answer.json()["detail"]
    assert app.store.db.execute("SELECT COUNT(*) FROM escalations").fetchone()[0] == 1
    # Resolved: the chain stops, and the parent says so.
    answer = await http.post(alert_url(app), json=payload("alertmanager-resolved"))
    assert answer.status_code == 200 and answer.json()["resolved"] == escalation_id
    record = app.running.escalations.get(escalation_id)
    assert record is not None and record.status == "resolved"
    await wait_for(lambda: "Resolved" in parent_text(app, escalation_id))
    assert "Alertmanager" in parent_text(app, escalation_id)
    # Resolved again: nothing running, nothing changed.
    answer = await http.post(alert_url(app), json=payload("alertmanager-resolved"))
    assert answer.status_code == 200 and answer.json()["resolved"] is None
    await app.settled()
    assert len(app.box.state.calls) == 1  # nobody else was called


async def test_a_grafana_alert_picks_its_policy_by_label(
    app: Harness, http: httpx.AsyncClient
) -> None:
    await add_policy(app, name="Search on-call")
    payments = await add_policy(app)
    # The label names the policy; the URL's default is another one.
    answer = await http.post(
        alert_url(app, policy="Search on-call"), json=payload("grafana-firing")
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["created"] is True
    record = app.running.escalations.get(answer.json()["escalation"])
    assert record is not None and record.policy_id == payments.id
    assert record.source == "grafana" and record.started_by == "Grafana"
    assert record.group_key == "grafana:" + payload("grafana-firing")["groupKey"]
    answer = await http.put(alert_url(app), json=payload("grafana-resolved"))  # Grafana: PUT
    assert answer.status_code == 200 and answer.json()["resolved"] == record.id


async def test_alert_text_with_mentions_is_shown_escaped(
    app: Harness, http: httpx.AsyncClient
) -> None:
    await add_policy(app)
    body = copy.deepcopy(payload("grafana-firing"))
    hostile = "<!channel> checkout down, ask <@U123> or <https://evil.example|the runbook>"
    body["commonAnnotations"]["summary"] = hostile
    answer = await http.post(alert_url(app), json=body)
    assert answer.status_code == 200, answer.text
    escalation_id = answer.json()["escalation"]
    await wait_for(lambda: app.store.escalations.message_ts(escalation_id))
    shown = parent_text(app, escalation_id)
    assert "&lt;!channel&gt;" in shown and "&lt;@U123&gt;" in shown
    assert "<!channel>" not in shown and "<@U123>" not in shown
    assert "<https://evil.example" not in shown


async def test_the_home_tab_shows_the_webhook_url_to_admins_only(
    tmp_path: Path, fake_slack: FakeSlack, sandbox: Sandbox
) -> None:
    harness = Harness(tmp_path, fake_slack, sandbox, overrides={"admin_user_ids": ["UADMIN"]})
    await harness.start()
    try:
        assert harness.slack is not None
        token = harness.store.meta.get(TOKEN_KEY)  # none configured: generated and kept
        assert token and len(token) >= 24
        for user in ("UADMIN", "UOTHER"):
            await harness.slack.event(app_home_opened(user))
        await fake_slack.wait_for(
            lambda f: (
                {c.params.get("user_id") for c in f.calls("views.publish")} >= {"UADMIN", "UOTHER"}
            )
        )
        admin = json.dumps(fake_slack.published_home("UADMIN"))
        other = json.dumps(fake_slack.published_home("UOTHER"))
        assert f"{harness.url}/alerts/{token}" in admin and "Alert webhooks" in admin
        assert token not in other and "Alert webhooks" not in other
        # The same token after a restart: the URL given to Alertmanager keeps working.
        await harness.restart()
        assert harness.running.store.meta.get(TOKEN_KEY) == token
        async with httpx.AsyncClient(trust_env=False) as http:
            answer = await http.post(f"{harness.url}/alerts/{token}", json={"version": "2"})
        assert answer.status_code == 422  # past the token: it was taken
    finally:
        await harness.stop()


async def test_an_acknowledged_group_is_not_called_again_until_it_resolves(
    app: Harness, http: httpx.AsyncClient
) -> None:
    await add_policy(app)
    url = alert_url(app, policy="Payments on-call")
    answer = await http.post(url, json=payload("alertmanager-firing"))
    escalation_id = answer.json()["escalation"]
    app.running.escalations.acknowledge(escalation_id, "U0ONCALL")
    # Alertmanager sends the group again (an alert joined it, or repeat_interval).
    again = payload("alertmanager-firing")
    again["alerts"].append(copy.deepcopy(again["alerts"][0]) | {"startsAt": now_rfc3339()})
    answer = await http.post(url, json=again)
    assert answer.status_code == 200 and answer.json()["created"] is False
    assert "acknowledged" in answer.json()["detail"]
    assert app.store.db.execute("SELECT COUNT(*) FROM escalations").fetchone()[0] == 1
    # It resolved without saying so, and fired again: every alert started after the ack.
    anew = payload("alertmanager-firing")
    for alert in anew["alerts"]:
        alert["startsAt"] = now_rfc3339()
    answer = await http.post(url, json=anew)
    assert answer.json()["created"] is True
    second = answer.json()["escalation"]
    # Resolved, then firing again with the old alerts: a new episode, a new escalation.
    await http.post(url, json=payload("alertmanager-resolved"))
    answer = await http.post(url, json=payload("alertmanager-firing"))
    assert answer.json()["created"] is True and answer.json()["escalation"] not in (
        escalation_id,
        second,
    )


def now_rfc3339() -> str:
    """Now, as Alertmanager writes times (nanoseconds, Z)."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f") + "123Z"


async def test_the_served_app_never_logs_the_alert_token(
    tmp_path: Path, fake_slack: FakeSlack, sandbox: Sandbox
) -> None:
    """`python -m bot run`, the token generated (so no secret filter knows it): refused
    and accepted alerts alike leave it out of both processes' logs."""
    from tests.test_security import served_app

    async with served_app(tmp_path, fake_slack, sandbox, wait_for_workflows=False) as served:
        database = tmp_path / "data" / "robocall.db"
        with sqlite3.connect(database) as db:
            (token,) = db.execute("SELECT value FROM meta WHERE key = ?", [TOKEN_KEY]).fetchone()
        url = f"{served.url}/alerts/{token}"
        async with httpx.AsyncClient(trust_env=False) as http:
            assert (await http.post(url, content=b"{oops")).status_code == 400
            assert (await http.post(url, json={"version": "9"})).status_code == 422
            unknown = await http.post(url + "?policy=Nobody", json=payload("grafana-firing"))
            assert unknown.status_code == 404
            resolved = await http.post(url, json=payload("alertmanager-resolved"))
            assert resolved.status_code == 200
            assert (await http.post(f"{served.url}/alerts/wrong", json={})).status_code == 404
    assert token not in served.output, served.output


def test_a_logged_alert_url_has_its_token_redacted() -> None:
    """Nothing logs the path; should anything ever (an error quoting the URL), the
    generated token, which no secret filter knows, is still removed."""
    token = "Zq3vX9_-kLmN0pQrStUvWxYz12345678"
    line = redact(f'POST http://app:3000/alerts/{token}?policy=Payments "HTTP/1.1 404"')
    assert token not in line and "/alerts/[redacted]?policy=Payments" in line
