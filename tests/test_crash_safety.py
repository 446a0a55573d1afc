"""Crash safety: the real processes (`python -m bot serve` and `python -m bot worker`) are
killed with SIGKILL at each step of a request's life, then started again on the same
database. Every accepted request must end called once and reported, or reported as
failed / "outcome unknown" with what to check; nobody is called twice. Some steps are
reached exactly with a failpoint (`bot/failpoints.py`): the process kills itself there.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from bot.core.models import RequestRecord, RequestStatus
from bot.providers.intron.models import WorkflowCreate
from bot.providers.intron.sandbox import Fault
from bot.store import Store
from bot.store.slack import SlackStore
from tests.conftest import Sandbox, make_client
from tests.harness import CALLBACK_TOKEN, SIGNING_SECRET, free_port
from tests.support.fake_slack import FakeSlack
from tests.support.slack_requests import SlackRequester

pytestmark = pytest.mark.slow

CLEAN_ENV = {
    k: v
    for k, v in os.environ.items()
    if not k.startswith(("SLACK_", "INTRON_", "CALLBACK_", "PUBLIC_URL", "ROBOCALL_"))
}


def number(n: int) -> str:
    return f"+2348031{n:06d}"


@dataclass
class AppProcesses:
    """The app as a user runs it: the web process and workers, each killable."""

    tmp_path: Path
    fake: FakeSlack
    box: Sandbox
    port: int
    web: asyncio.subprocess.Process | None = None
    workers: list[asyncio.subprocess.Process] = field(default_factory=list)
    extra_env: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def db(self) -> Path:
        return self.tmp_path / "robocall.db"

    def env(self, failpoints: str = "") -> dict[str, str]:
        return CLEAN_ENV | {
            "SLACK_BOT_TOKEN": "xoxb-crash",
            "SLACK_SIGNING_SECRET": SIGNING_SECRET,
            "SLACK_API_URL": self.fake.api_url,
            "INTRON_API_KEY": "crash-key",
            "INTRON_BASE_URL": self.box.url,
            "PUBLIC_URL": self.url,
            "CALLBACK_TOKEN": CALLBACK_TOKEN,
            "DATABASE_PATH": str(self.db),
            "HOST": "127.0.0.1",
            "PORT": str(self.port),
            "RECONCILE_AFTER": "1",
            "JOB_LEASE": "3",
            "INTRON_MANAGEMENT_PER_MINUTE": "1000",
            "INTRON_MANAGEMENT_PER_HOUR": "100000",
            "ROBOCALL_FAILPOINTS": failpoints,
            **self.extra_env,
        }

    async def _spawn(self, role: str, failpoints: str = "") -> asyncio.subprocess.Process:
        with (self.tmp_path / f"{role}.log").open("ab") as log:  # read when a test fails
            return await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "bot",
                role,
                cwd=self.tmp_path,
                env=self.env(failpoints),
                stdout=log,
                stderr=log,
            )

    async def start(self, *, workers: int = 1, failpoints: str = "") -> None:
        """The web process (ready once it answers /healthz) and `workers` workers."""
        if self.web is None or self.web.returncode is not None:
            self.web = await self._spawn("serve")
            async with httpx.AsyncClient() as http, asyncio.timeout(30):
                while True:
                    try:
                        if (await http.get(f"{self.url}/healthz")).status_code == 200:
                            break
                    except httpx.TransportError:
                        pass
                    await asyncio.sleep(0.05)
        for _ in range(workers):
            await self.start_worker(failpoints)
        async with asyncio.timeout(30):  # a worker has filled the workflow cache
            while not self._fetched():
                await asyncio.sleep(0.05)

    def _fetched(self) -> bool:
        store = Store(self.db)
        try:
            return store.workflows.fetched_at("intron") is not None
        finally:
            store.close()

    async def start_worker(self, failpoints: str = "") -> asyncio.subprocess.Process:
        worker = await self._spawn("worker", failpoints)
        self.workers.append(worker)
        return worker

    async def kill_workers(self) -> None:
        for worker in self.workers:
            if worker.returncode is None:
                worker.send_signal(signal.SIGKILL)
            await worker.wait()
        self.workers.clear()

    async def kill_all(self) -> None:
        await self.kill_workers()
        if self.web is not None:
            if self.web.returncode is None:
                self.web.send_signal(signal.SIGKILL)
            await self.web.wait()
        self.web = None

    async def command(self, text: str) -> httpx.Response:
        async with SlackRequester(self.url, SIGNING_SECRET, fake=self.fake) as slack:
            return await slack.command(text)

    def requests(self) -> list[RequestRecord]:
        store = Store(self.db)
        try:
            return store.requests.recent(1000)
        finally:
            store.close()

    async def wait_for(
        self, check: Callable[[list[RequestRecord]], bool], timeout: float = 40
    ) -> list[RequestRecord]:
        async with asyncio.timeout(timeout):
            while not check(records := self.requests()):
                await asyncio.sleep(0.05)
        return records


@pytest.fixture
async def app(
    tmp_path: Path, fake_slack: FakeSlack, sandbox: Sandbox
) -> AsyncIterator[AppProcesses]:
    sandbox.state.config.callback_backoff = 0.3  # retry callbacks while the app is down
    port = free_port()
    async with make_client(sandbox.url) as client:
        await client.create_workflow(
            WorkflowCreate(
                name="Alert",
                message="Alert for [name]",
                call_back_url=f"http://127.0.0.1:{port}/callbacks/intron/{CALLBACK_TOKEN}",
            )
        )
    processes = AppProcesses(tmp_path, fake_slack, sandbox, port)
    yield processes
    await processes.kill_all()


def all_final(records: list[RequestRecord]) -> bool:
    done = {RequestStatus.COMPLETED, RequestStatus.FAILED}
    return bool(records) and all(r.status in done for r in records)


def results(fake: FakeSlack) -> list:
    return [m for m in fake.messages("C1") if "Results for" in m.all_text()]


def assert_called_once_and_reported(app: AppProcesses, records: list[RequestRecord]) -> None:
    called = app.box.state.numbers_called()
    assert called and max(called.values()) == 1, f"called twice: {called}"
    for record in records:
        assert record.status == RequestStatus.COMPLETED, record
    parents = [m for m in app.fake.messages("C1") if not m.params.get("thread_ts")]
    assert len(results(app.fake)) == len(records), "every request reported, once"
    assert len(parents) == len(records), "one channel message per request"


async def test_killed_after_the_ack_before_sending(app: AppProcesses) -> None:
    """Requests acked and stored, still waiting for a rate-limit slot: sent after restart."""
    app.extra_env = {"INTRON_CALLS_PER_SECOND": "1"}
    # Slack takes no message before the kill, so that the kill cannot land between Slack
    # accepting a message and the app recording it (a repeat the README admits to).
    app.fake.fail_next("chat.postMessage", status=503, times=10_000)
    await app.start()
    for n in range(4):
        assert "accepted" in (await app.command(f"call Alert {number(n)} name=N{n}")).text
    await app.wait_for(lambda rs: len(rs) == 4)
    await app.kill_all()
    app.fake.reset()
    assert any(r.status == RequestStatus.ACCEPTED for r in app.requests()), (
        "the kill came too late to test this step"
    )
    await app.start()
    records = await app.wait_for(all_final)
    await app.fake.wait_for(lambda f: len(results(f)) == 4, timeout=30)
    assert_called_once_and_reported(app, records)
    assert len(records) == 4


async def test_killed_while_intron_is_being_called(app: AppProcesses) -> None:
    """The worker dies the moment the request becomes "sending" (a failpoint), so Intron
    may or may not have it: outcome unknown, said at once; reconciliation finds it was
    not placed, and says it is safe to send again. It is never resent by itself."""
    await app.start(failpoints="request.sending")
    await app.command(f"call Alert {number(1)} name=Ada")
    await app.wait_for(lambda rs: rs and rs[0].status == RequestStatus.SENDING)
    await app.workers[0].wait()  # it killed itself
    await app.kill_workers()
    await app.start()
    [record] = await app.wait_for(
        lambda rs: rs and rs[0].status == RequestStatus.FAILED, timeout=30
    )
    thread = await app.fake.wait_for(
        lambda f: [m for m in f.messages("C1") if "safe to send it again" in m.all_text()],
        timeout=30,
    )
    assert thread
    text = " ".join(m.all_text() for m in app.fake.messages("C1"))
    assert "may or may not have been placed" in text  # what to check, said at once
    assert app.box.state.requests_seen.get("place_calls", 0) == 0  # never resent
    assert "Checked with Intron" in record.error


async def test_killed_while_intron_answers_late(app: AppProcesses) -> None:
    """POST /call reached Intron, the answer never came back before the kill: outcome
    unknown, then found through the listing (or the callback), reported once."""
    app.box.state.faults.append(Fault("place_calls", answer_delay=30))
    app.box.state.config.callback_delay = 3.0
    await app.start()
    await app.command(f"call Alert {number(1)} name=Ada")
    await app.wait_for(lambda rs: rs and rs[0].status == RequestStatus.SENDING)
    await asyncio.sleep(0.3)  # the sandbox has it
    await app.kill_workers()
    await app.start()
    records = await app.wait_for(all_final, timeout=30)
    await app.fake.wait_for(results, timeout=30)
    assert_called_once_and_reported(app, records)
    thread_text = " ".join(m.all_text() for m in app.fake.messages("C1"))
    assert "may or may not have been placed" in thread_text
    assert app.box.state.requests_seen["place_calls"] == 1


async def test_killed_after_intron_answered_before_slack_was_told(app: AppProcesses) -> None:
    """Placed, Slack not yet told, and the one callback Intron sends arrives while the
    app is dead: after the restart Slack is told, and the lost results are recovered
    through the workflow-calls listing."""
    for method in ("chat.postMessage", "chat.update"):
        app.fake.fail_next(method, status=503, times=10_000)
    app.box.state.config.callback_delay = 1.0
    app.box.state.config.callback_attempts = 1  # lost for good if nobody listens
    await app.start()
    await app.command(f"call Alert {number(2)} name=Ada")
    await app.wait_for(lambda rs: rs and rs[0].status == RequestStatus.PLACED)
    await app.kill_all()
    assert app.fake.messages("C1") == []
    await asyncio.sleep(1.5)  # the callback comes and goes
    assert app.box.state.callbacks[0]["attempts"] == ["ConnectError"]
    app.fake.reset()
    await app.start()
    records = await app.wait_for(all_final, timeout=30)
    await app.fake.wait_for(results, timeout=30)
    assert_called_once_and_reported(app, records)
    store = Store(app.db)
    assert store.requests.callback_log() == []  # no callback reached the app
    completed = [r for r in store.audit.trail() if r["action"] == "request.completed"]
    assert [json.loads(r["detail"])["source"] for r in completed] == ["reconciler"]
    store.close()


async def test_killed_while_a_callback_is_being_reported(app: AppProcesses) -> None:
    """The callback is stored, Slack refuses the results, the app dies: the results
    wait as jobs and are posted, once, in the right thread after the restart."""
    app.box.state.config.callback_delay = 0.3
    await app.start()
    await app.command(f"call Alert {number(3)} name=Ada")
    assert len(await app.fake.wait_for(lambda f: f.messages("C1"))) == 1  # the parent
    for method in ("chat.postMessage", "chat.update"):
        app.fake.fail_next(method, status=503, times=10_000)
    await app.wait_for(lambda rs: rs and rs[0].status == RequestStatus.COMPLETED)
    await app.kill_all()
    store = Store(app.db)
    parent_ts = SlackStore(store.db).message(app.requests()[0].id).ts
    store.close()
    app.fake.reset()
    await app.start()
    posted = await app.fake.wait_for(results, timeout=30)
    assert len(posted) == 1 and posted[0].params["thread_ts"] == parent_ts
    assert not [m for m in app.fake.messages("C1") if not m.params.get("thread_ts")]
    assert app.box.state.numbers_called() == {number(3): 1}


async def test_killed_between_a_failure_and_its_slack_update(app: AppProcesses) -> None:
    """Intron refuses the request; the worker dies the instant the failure is stored
    (a failpoint). The channel must still end up saying it failed, with the reason."""
    # Refused a second late, so that the parent ("Placing…") is surely posted first.
    app.box.state.faults.append(Fault("place_calls", status=401, answer_delay=1.0))
    await app.start(failpoints="request.failed")
    await app.command(f"call Alert {number(5)} name=Ada")
    await app.wait_for(lambda rs: rs and rs[0].status == RequestStatus.FAILED)
    await asyncio.wait_for(app.workers[0].wait(), timeout=30)  # it killed itself there
    assert app.workers[0].returncode == -signal.SIGKILL
    await app.kill_workers()
    await app.start()
    reply = await app.fake.wait_for(
        lambda f: [m for m in f.messages("C1") if "refused our API key" in m.all_text()],
        timeout=30,
    )
    assert reply[0].params.get("thread_ts")
    parent = [m for m in app.fake.messages("C1") if not m.params.get("thread_ts")]
    assert len(parent) == 1
    shown = app.fake.updates("C1", parent[0].params.get("ts") or reply[0].params["thread_ts"])
    final = (shown[-1] if shown else parent[0]).all_text()
    assert "failed, nobody was called" in final
    assert app.box.state.requests_seen["place_calls"] == 1


async def test_killed_the_instant_results_are_stored(app: AppProcesses) -> None:
    """The callback is applied and the worker dies right after (a failpoint): the
    results are posted once after the restart, in the request's thread."""
    app.box.state.config.callback_delay = 0.3
    await app.start(failpoints="request.completed")
    await app.command(f"call Alert {number(4)} name=Ada")
    await app.wait_for(lambda rs: rs and rs[0].status == RequestStatus.COMPLETED)
    await asyncio.wait_for(app.workers[0].wait(), timeout=30)
    await app.kill_workers()
    await app.start()
    posted = await app.fake.wait_for(results, timeout=30)
    await asyncio.sleep(0.5)
    assert len(results(app.fake)) == 1 and posted[0].params["thread_ts"]
    assert app.box.state.numbers_called() == {number(4): 1}


async def test_two_workers_and_one_killed_mid_way(app: AppProcesses) -> None:
    """Two workers on one database: no job runs twice at once (nobody is called twice),
    and when one is killed mid-way the other carries on with everything."""
    app.extra_env = {"INTRON_CALLS_PER_SECOND": "4"}
    app.box.state.config.callback_delay = 0.5
    await app.start(workers=2)
    for n in range(12):
        assert "accepted" in (await app.command(f"call Alert {number(10 + n)} name=N{n}")).text
    await app.wait_for(lambda rs: sum(r.status != RequestStatus.ACCEPTED for r in rs) >= 3)
    first = app.workers[0]
    first.send_signal(signal.SIGKILL)
    await first.wait()
    records = await app.wait_for(lambda rs: len(rs) == 12 and all_final(rs), timeout=40)
    called = app.box.state.numbers_called()
    assert max(called.values()) == 1, f"called twice: {called}"
    # A request the killed worker was sending becomes "outcome unknown" and is looked
    # up: found, it completes; not found, it failed with nobody called. Never resent.
    completed = [r for r in records if r.status == RequestStatus.COMPLETED]
    not_placed = [r for r in records if r.status == RequestStatus.FAILED]
    assert all("nobody was called" in (r.error or "") for r in not_placed)
    assert len(not_placed) <= 1  # only what the killed worker had in hand
    assert sum(called.values()) == len(completed)
    await app.fake.wait_for(lambda f: len(results(f)) == len(completed), timeout=20)
    parents = [m for m in app.fake.messages("C1") if not m.params.get("thread_ts")]
    # One parent each; one more if the kill fell between Slack accepting a message and
    # the worker recording it (Slack has no idempotency key: see the README's limits).
    assert len(parents) in (12, 13)
