"""Benchmark 7: escalations, from the alert webhook to the phone and back.

One app (`python -m bot serve` and a worker) with its escalation policies stored
before it starts, the sandbox as Intron with its call limit raised to 1,000/s (so
the provider's limits are not what is measured) and its own callbacks delayed past
the end of the run (so that every result the app gets is one the benchmark sends,
at a time it knows), the fake Slack without a rate limit. Three parts, one after
the other, each starting once the app has sent every Slack message of the one
before:

- **a. alert → first call.** 200 Alertmanager notifications, each its own group
  (`alertname` BenchNNNN), POSTed to `/alerts/{token}` at 20 per second (an alert
  storm: open loop, each sent on time whatever the previous answer). Latency runs
  from sending the notification to the sandbox creating that escalation's first
  call (`created_at` of the call tagged with the request of that escalation's first
  step, read back through the sandbox's `GET /workflows/{id}/calls`). Then each group's
  `resolved` notification is sent and must stop its escalation.
- **b. key 1 → stopped and shown.** 100 more groups, in one channel, on a policy
  whose first step is a number ending in 1; once each
  step's call is placed, its parent posted and the app has no Slack message left to
  send, the completion callback saying key 1 was pressed (built with the sandbox's
  own classes, `bench.seed.callback_payload`) is POSTed to the app, 10 per second.
  Latency runs from sending the callback to the fake Slack accepting the
  `chat.update` of that escalation's parent saying *Acknowledged*; "chain stopped"
  alone is to the escalation's `ended_at` (stored, millisecond precision). A
  channel's messages are sent one at a time (the app's per-channel queue, for Slack's
  per-channel limit), so an acknowledgement arriving behind a backlog of that
  channel's messages shows later than this.
- **c. timers.** 100 groups at once on a policy of three steps of 5 s whose calls
  never report: every step ends by its timer. Lateness is when the timer ended
  the step (the step's `ended_at`) minus when it was due (`due_at`), for all 300.

*Goals* (issue 13): a. p99 ≤ 1 s; b. p99 ≤ 2 s; c. every timer within 1 s.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from bench.common import Report, Row, percentile, say, scaled
from bench.procs import Proc, free_port
from bench.seed import Seeded, callback_body
from bench.stack import CALLBACK_TOKEN, INTRON_KEY, Run, number
from bot.core.policies import Policy, PolicyStep
from bot.providers.intron.models import Workflow, WorkflowCreate
from bot.providers.intron.provider import REFERENCE_TAG
from bot.store import Store

TOKEN = "bench-alert-token-7c41d2"
CHANNEL = "CBENCHESC"
ALERTS = 200  # part a
ACKS = 100  # part b
# Part b's escalations are spread over this many channels (one policy each). One: the
# strictest, since a channel's messages go out one at a time.
ACK_CHANNELS = 1
ACK_RATE = 10.0  # key-1 callbacks per second
AT_ONCE = 100  # part c
RATE = 20.0  # notifications (a) and callbacks (b) per second
TIMER_STEPS = 3
TIMER_WAIT = 5.0  # the shortest wait a policy may have
FIRST_CALL_GOAL = 1.0
ACK_GOAL = 2.0
TIMER_GOAL = 1.0
PHASE_TIMEOUT = 60.0

ON_CALL = WorkflowCreate(
    name="Bench on-call",
    description="Created by the benchmarks.",
    message="Alert for [policy]: [message]. Press 1 to acknowledge, 2 to pass it on.",
    include_reply=True,
    response_options={"1": "Acknowledge", "2": "Pass"},
)


def policies(workflow: Workflow) -> dict[str, Policy]:
    """The three policies, by part: a number ending in 3 (answered, no key) for a and c,
    one ending in 1 (key 1) for b; waits long enough that a and b never time out."""

    def policy(key: str, name: str, steps: list[PolicyStep], channel: str = CHANNEL) -> Policy:
        return Policy(
            id=f"ep-bench{key}", name=name, channel=channel, workflow=workflow.id, steps=steps
        )

    acknowledged = [PolicyStep(call=number(11), wait=120)]
    return {
        "a": policy("a", "Bench first call", [PolicyStep(call=number(3), wait=120)]),
        **{
            f"b{k}": policy(f"b{k}", f"Bench acknowledge {k}", acknowledged, f"CBENCHACK{k}")
            for k in range(ACK_CHANNELS)
        },
        "c": policy(
            "c",
            "Bench timers",
            [PolicyStep(call=number(20 + k * 10 + 3), wait=TIMER_WAIT) for k in range(TIMER_STEPS)],
        ),
    }


def notification(name: str, status: str = "firing") -> dict[str, Any]:
    """An Alertmanager webhook body (version 4) for a group of one alert, `name`."""
    labels = {"alertname": name, "severity": "critical", "instance": "bench-1:9100"}
    return {
        "receiver": "robocall",
        "status": status,
        "alerts": [
            {
                "status": status,
                "labels": labels,
                "annotations": {"summary": f"{name} is failing"},
                "startsAt": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
                "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": "http://prometheus.bench:9090/graph",
                "fingerprint": f"{abs(hash(name)):016x}"[:16],
            }
        ],
        "groupLabels": {"alertname": name},
        "commonLabels": labels,
        "commonAnnotations": {"summary": f"{name} is failing"},
        "externalURL": "http://alertmanager.bench:9093",
        "version": "4",
        "groupKey": f'{{}}:{{alertname="{name}"}}',
        "truncatedAlerts": 0,
    }


async def run(folder: Path, scale: float, profile: bool) -> Report:
    """Run benchmark 7 and return its rows."""
    report = Report(7, "Escalation: alert → first call, key 1 → stopped, timers")
    counts = {
        "a": scaled(ALERTS, scale, least=20),
        "b": scaled(ACKS, scale, least=10),
        "c": scaled(AT_ONCE, scale, least=10),
    }
    async with Run(folder / "7-escalation", profile) as run:
        sandbox = await run.sandbox(calls_per_second=1000, callback_delay=900.0)
        slack = await run.fake_slack()
        port = free_port()
        workflow = await run.create_workflow(sandbox, port, ON_CALL)
        database = run.folder / "app.db"
        chosen = policies(workflow)
        store = Store(database)  # the policies, stored before the app starts
        try:
            for policy in chosen.values():
                store.policies.put(policy)
        finally:
            store.close()
        env = {"ALERT_WEBHOOK_TOKEN": TOKEN, "INTRON_CALLS_PER_SECOND": "1000"}
        app = await run.app(
            "app", port=port, sandbox=sandbox, slack=slack, database=database, env=env
        )
        await run.wait_for_workflow(app, workflow.name)
        bench = Bench(run, app, sandbox, slack, workflow, database)
        async with run.profiled(app, "7-escalation"):
            await bench.first_calls(report, counts["a"], chosen["a"])
            await bench.drained()
            acks = [chosen[f"b{k}"] for k in range(ACK_CHANNELS)]
            await bench.acknowledgements(report, counts["b"], acks)
            await bench.drained()
            await bench.timers(report, counts["c"], chosen["c"])
    return report


class Bench:
    """The three parts, against one running app."""

    def __init__(
        self, run: Run, app: Proc, sandbox: Proc, slack: Proc, workflow: Workflow, db: Path
    ) -> None:
        self.run, self.app, self.sandbox, self.slack = run, app, sandbox, slack
        self.workflow = workflow
        self.db_path = db
        self.http = httpx.AsyncClient(trust_env=False, timeout=30.0)
        self.url = f"{app.url}/alerts/{TOKEN}"

    def rows(self, sql: str, args: tuple = ()) -> list[tuple]:
        """Read the app's database (read-only; WAL lets it go on writing)."""
        with sqlite3.connect(f"file:{self.db_path}?mode=ro", uri=True, timeout=10) as db:
            return db.execute(sql, args).fetchall()

    async def fire(self, names: list[str], policies: list[Policy]) -> dict[str, tuple[float, dict]]:
        """POST each group's firing notification (the k-th to the k-th policy, in turn),
        RATE a second, on time; name → (wall time sent, answer)."""
        sent: dict[str, tuple[float, dict]] = {}
        policy_of = {name: policies[k % len(policies)] for k, name in enumerate(names)}

        async def one(name: str) -> None:
            at = time.time()
            answer = await self.http.post(
                self.url, params={"policy": policy_of[name].name}, json=notification(name)
            )
            body = answer.json() if answer.status_code == 200 else {"error": answer.text}
            sent[name] = (at, body | {"_seconds": time.time() - at})

        await paced([lambda n=n: one(n) for n in names], RATE)
        return sent

    async def wait_until(self, what: str, done: Callable[[], bool]) -> bool:
        deadline = time.monotonic() + PHASE_TIMEOUT
        while not done():
            if time.monotonic() > deadline:
                say(f"  7: gave up waiting for {what}")
                return False
            await asyncio.sleep(0.25)
        return True

    # ------------------------------------------------------------ a

    async def first_calls(self, report: Report, count: int, policy: Policy) -> None:
        names = [f"Bench{i:04d}" for i in range(count)]
        sent = await self.fire(names, [policy])
        created = [n for n, (_, body) in sent.items() if body.get("created") is True]
        placed = await self.wait_until(
            "the first calls",
            lambda: self.placed_steps(policy.id) >= len(created),
        )
        # The sandbox's calls carry our request id (a tag); the step names the request.
        alert_of = {
            request: message.split(":", 1)[0].strip()
            for request, message in self.rows(
                "SELECT s.request_id, e.message FROM escalation_steps s "
                "JOIN escalations e ON e.id = s.escalation_id "
                "WHERE e.policy_id = ? AND s.round = 0 AND s.step = 0",
                (policy.id,),
            )
        }
        first: dict[str, float] = {}
        for call in await self.sandbox_calls():
            name = alert_of.get((call.get("user_tag_identifiers") or {}).get(REFERENCE_TAG))
            at = datetime.fromisoformat(call["created_at"]).replace(tzinfo=UTC).timestamp()
            if name in sent:
                first[name] = min(first.get(name, at), at)
        latencies = [first[n] - sent[n][0] for n in created if n in first]
        answers = [body["_seconds"] for _, body in sent.values()]
        p99 = percentile(latencies, 99) if latencies else float("nan")
        met = placed and len(latencies) == count and p99 <= FIRST_CALL_GOAL
        report.add(
            Row(
                f"alert webhook → first POST /call, p99 ({count} groups, {RATE:.0f}/s)",
                1000 * p99,
                unit="ms",
                goal=f"≤ {FIRST_CALL_GOAL:.0f} s",
                met=met,
            )
        )
        if latencies:
            report.add(
                Row(
                    "alert webhook → first POST /call, p50",
                    1000 * percentile(latencies, 50),
                    unit="ms",
                )
            )
        report.add(Row("alert webhook answered, p99", 1000 * percentile(answers, 99), unit="ms"))
        report.note(
            f"a: {len(created)} of {count} notifications started an escalation; "
            f"{len(latencies)} first calls found at the sandbox; slowest "
            f"{max(latencies, default=float('nan')):.3f} s"
        )
        # Each group resolves: every escalation stops.
        resolved = 0
        for name in names:
            answer = await self.http.post(self.url, json=notification(name, "resolved"))
            resolved += answer.status_code == 200 and bool(answer.json().get("resolved"))
        report.note(
            f"a: {resolved} of {len(created)} escalations stopped by their resolved notification"
        )

    def placed_steps(self, policy_id: str, round: int = 0, step: int = 0) -> int:
        """Steps of this policy whose request has been sent to the provider."""
        return self.rows(
            "SELECT COUNT(*) FROM escalation_steps s JOIN escalations e ON e.id = s.escalation_id "
            "JOIN requests r ON r.id = s.request_id WHERE e.policy_id = ? AND s.round = ? "
            "AND s.step = ? AND r.provider_ref IS NOT NULL",
            (policy_id, round, step),
        )[0][0]

    async def sandbox_calls(self) -> list[dict[str, Any]]:
        """Every call the sandbox created for the workflow (its own listing API)."""
        calls: list[dict[str, Any]] = []
        page = 1
        headers = {"Authorization": f"Bearer {INTRON_KEY}"}
        while True:
            answer = await self.http.get(
                f"{self.sandbox.url}/workflows/{self.workflow.id}/calls",
                params={"page": page, "per_page": 100},
                headers=headers,
            )
            if answer.status_code == 429:  # the management limit (6/min): wait it out
                await asyncio.sleep(float(answer.headers.get("retry-after", "10")))
                continue
            answer.raise_for_status()
            items = answer.json()["data"]["items"]
            calls += items
            if len(items) < 100:
                return calls
            page += 1

    # ------------------------------------------------------------ b

    async def acknowledgements(self, report: Report, count: int, policies: list[Policy]) -> None:
        names = [f"BenchAck{i:04d}" for i in range(count)]
        sent = await self.fire(names, policies)
        ids = {n: body["escalation"] for n, (_, body) in sent.items() if body.get("created")}
        ready = await self.wait_until(
            "the calls to acknowledge and their parents",
            lambda: (
                sum(self.placed_steps(p.id) for p in policies) >= len(ids)
                and self.parents(ids) >= len(ids)
            ),
        )
        await self.drained()  # their parents and "calling" edits shown: a quiet start
        steps = {
            escalation: (request, ref, phone)
            for escalation, request, ref, phone in self.rows(
                "SELECT s.escalation_id, s.request_id, r.provider_ref, s.phone "
                "FROM escalation_steps s JOIN requests r ON r.id = s.request_id "
                "WHERE s.round = 0 AND s.step = 0 AND r.provider_ref IS NOT NULL"
            )
        }
        parents = dict(self.rows("SELECT escalation_id, ts FROM escalation_messages"))
        watcher = UpdateWatcher(self.run, self.slack)
        await watcher.poll()
        callback_url = f"{self.app.url}/callbacks/intron/{CALLBACK_TOKEN}"
        sent_at: dict[str, tuple[float, float]] = {}  # escalation → (monotonic, wall)
        accepted = 0

        async def one(index: int, escalation: str) -> None:
            nonlocal accepted
            request, ref, phone = steps[escalation]
            seeded = Seeded(index, request, ref, CHANNEL, "", "bench", (phone,))
            body = callback_body(seeded, self.workflow)
            sent_at[escalation] = (time.monotonic(), time.time())
            answer = await self.http.post(
                callback_url, content=body, headers={"Content-Type": "application/json"}
            )
            accepted += answer.status_code == 200

        chosen = [e for e in ids.values() if e in steps and parents.get(e)]
        await paced([lambda i=i, e=e: one(i, e) for i, e in enumerate(chosen)], ACK_RATE)
        wanted = {parents[e]: e for e in chosen}
        deadline = time.monotonic() + PHASE_TIMEOUT
        while len(watcher.acknowledged.keys() & wanted.keys()) < len(wanted):
            if time.monotonic() > deadline:
                break
            await asyncio.sleep(0.25)
            await watcher.poll()
        edited = [
            watcher.acknowledged[ts] - sent_at[e][0]
            for ts, e in wanted.items()
            if ts in watcher.acknowledged
        ]
        ended = dict(
            self.rows(
                "SELECT id, ended_at FROM escalations WHERE status = 'acknowledged' "
                "AND ended_at IS NOT NULL"
            )
        )
        stopped = [
            datetime.fromisoformat(ended[e]).timestamp() - sent_at[e][1]
            for e in chosen
            if e in ended
        ]
        p99 = percentile(edited, 99) if edited else float("nan")
        complete = ready and len(edited) == count and len(stopped) == count
        report.add(
            Row(
                f"key 1 callback → chain stopped and parent edited, p99 ({count}, "
                f"{ACK_RATE:.0f}/s, {len(policies)} channel{'s' if len(policies) > 1 else ''})",
                1000 * p99,
                unit="ms",
                goal=f"≤ {ACK_GOAL:.0f} s",
                met=complete and p99 <= ACK_GOAL,
            )
        )
        if edited:
            report.add(
                Row("key 1 callback → parent edited, p50", 1000 * percentile(edited, 50), unit="ms")
            )
        if stopped:
            report.add(
                Row(
                    "key 1 callback → chain stopped (stored), p99",
                    1000 * percentile(stopped, 99),
                    unit="ms",
                )
            )
        report.note(
            f"b: {accepted} of {len(chosen)} callbacks accepted; {len(stopped)} of {count} "
            f"escalations acknowledged; {len(edited)} parents edited to Acknowledged; slowest "
            f"edit {max(edited, default=float('nan')):.3f} s, slowest stop "
            f"{max(stopped, default=float('nan')):.3f} s (ms precision)"
        )

    async def drained(self) -> None:
        """Until the app has no Slack message of an escalation left to send (a channel's
        messages go out one at a time), so one part's backlog is not the next's."""
        started = time.monotonic()
        await self.wait_until(
            "the Slack backlog",
            lambda: (
                self.rows("SELECT COUNT(*) FROM jobs WHERE kind = 'escalation.post'")[0][0] == 0
            ),
        )
        say(f"  7: Slack backlog drained in {time.monotonic() - started:.1f} s")

    def parents(self, ids: dict[str, str]) -> int:
        posted = {
            e for e, ts in self.rows("SELECT escalation_id, ts FROM escalation_messages") if ts
        }
        return len(posted & set(ids.values()))

    # ------------------------------------------------------------ c

    async def timers(self, report: Report, count: int, policy: Policy) -> None:
        names = [f"BenchTimer{i:04d}" for i in range(count)]
        started = time.monotonic()
        answers = await asyncio.gather(
            *(
                self.http.post(self.url, params={"policy": policy.name}, json=notification(n))
                for n in names
            )
        )
        ids = [a.json()["escalation"] for a in answers if a.status_code == 200]
        say(f"  7: {len(ids)} escalations started in {time.monotonic() - started:.2f} s")
        most_running = 0

        def ended() -> bool:
            nonlocal most_running
            running = self.rows(
                "SELECT COUNT(*) FROM escalations WHERE policy_id = ? AND status = 'running'",
                (policy.id,),
            )[0][0]
            most_running = max(most_running, running)
            return running == 0

        finished = await self.wait_until("the timed chains to end", ended)
        rows = self.rows(
            "SELECT s.due_at, s.ended_at, s.outcome FROM escalation_steps s "
            "JOIN escalations e ON e.id = s.escalation_id WHERE e.policy_id = ?",
            (policy.id,),
        )
        late = [
            datetime.fromisoformat(ended_at).timestamp() - due
            for due, ended_at, outcome in rows
            if outcome == "no_result" and due is not None and ended_at
        ]
        other = [outcome for _, _, outcome in rows if outcome != "no_result"]
        expected = count * TIMER_STEPS
        worst = max(late, default=float("nan"))
        met = finished and len(late) == expected and worst <= TIMER_GOAL
        report.add(
            Row(
                f"{count} escalations at once: step timers late, worst of {len(late)}",
                1000 * worst,
                unit="ms",
                goal=f"all ≤ {TIMER_GOAL:.0f} s",
                met=met,
            )
        )
        if late:
            report.add(Row("step timers late, p99", 1000 * percentile(late, 99), unit="ms"))
        report.note(
            f"c: {len(ids)} escalations of {TIMER_STEPS} steps of {TIMER_WAIT:.0f} s; at most "
            f"{most_running} running at once (sampled every 0.25 s); {len(late)} of {expected} "
            f"steps ended by their timer; other outcomes: {sorted(set(other)) or 'none'}"
        )


class UpdateWatcher:
    """When the fake Slack first accepted a `chat.update` saying *Acknowledged*, by ts."""

    def __init__(self, run: Run, slack: Proc) -> None:
        self.run, self.slack = run, slack
        self.seen = 0
        self.acknowledged: dict[str, float] = {}

    async def poll(self) -> None:
        new = (await self.run.slack_records(self.slack, self.seen, 0))["calls"]
        self.seen += len(new)
        for call in new:
            if call["method"] == "chat.update" and "Acknowledged" in call["text"]:
                self.acknowledged.setdefault(call["ts"], call["at"])


async def paced(jobs: list[Callable[[], Awaitable[None]]], rate: float) -> None:
    """Start job k at k / rate seconds (an open loop), and wait for all of them."""
    started = time.monotonic()
    tasks = []
    for index, job in enumerate(jobs):
        delay = started + index / rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(job()))
    await asyncio.gather(*tasks)
