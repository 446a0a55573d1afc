"""`POST /alerts/{token}`: Alertmanager and Grafana alert webhooks that start and stop
escalations.

Like every route here it only verifies, stores and answers: `EscalationService.start`
and `resolve_group` write rows and jobs (one transaction each) and the worker makes
the calls. The answers (JSON, `error` naming what is wrong):

- wrong token: 404, nothing read or stored;
- a body over `ALERT_BODY_LIMIT`: 413, read no further;
- not JSON: 400; JSON that is neither format, or one with a field wrong: 422;
- firing, no policy named (query `policy`, label `robocall_policy`): 422;
- firing, a policy that does not exist: 404 naming it;
- firing: 200, `created` true and the escalation's id; the same group again while its
  escalation runs, or after someone acknowledged or resolved it in Slack and before the
  group resolved: 200, `created` false, nothing changed (an escalation that ended with
  nobody acknowledging holds nothing: the group's next notification pages again);
- resolved: 200, the escalation it stopped, or that none was running.

Alertmanager retries 5xx answers and gives up on 4xx, so every refusal is a 4xx
(nothing a retry could fix) and the 503 while starting is the one retried.
"""

from __future__ import annotations

import hmac
from datetime import datetime
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from bot.core.escalation import EscalationRecord, EscalationService, EscalationStatus
from bot.input.alerts import POLICY_LABEL, AlertGroup, BadAlert, read_alert
from bot.text import quoted
from bot.web.limits import read_body, too_large
from bot.web.state import running

if TYPE_CHECKING:
    from bot.core.policies import Policy
    from bot.store.meta import MetaStore
    from bot.store.policies import PolicyStore

# An Alertmanager group of a few hundred alerts, each with its labels and annotations,
# is some hundreds of KiB; 1 MiB leaves room and still bounds what a caller can make
# the process hold (set `max_alerts` in webhook_configs for larger groups).
ALERT_BODY_LIMIT = 1024 * 1024
# meta key + group key → the id of the escalation of the group's current episode (set
# when an alert starts one, removed when the group resolves).
EPISODE = "alert_episode:"
POLICIES_NAMED = 10  # the known policies listed in a "no such policy" answer


async def alert_webhook(request: Request) -> Response:
    """Start (firing) or stop (resolved) the escalation of one alert group."""
    web = running(request)
    if web is None:
        return JSONResponse({"error": "starting"}, status_code=503)
    runtime = web.runtime
    token = request.path_params["token"]
    expected: str = request.app.state.alert_token
    if not hmac.compare_digest(token.encode(), expected.encode()):
        return JSONResponse({"error": "not found"}, status_code=404)
    if runtime.escalations is None:  # retried by Alertmanager: a 5xx
        return JSONResponse({"error": "escalations are not set up in this app"}, status_code=503)
    raw = await read_body(request, ALERT_BODY_LIMIT)
    if raw is None:
        return too_large(ALERT_BODY_LIMIT)
    try:
        group = read_alert(raw)
    except BadAlert as exc:
        return JSONResponse({"error": exc.message}, status_code=exc.status)
    if group.status == "resolved":
        return _resolved(runtime.escalations, runtime.store.meta, group)
    chosen = chosen_policy(group, request.query_params.get("policy"))
    if chosen is None:
        return JSONResponse(
            {
                "error": "no escalation policy named: add ?policy=<policy name> to the "
                f"webhook URL, or the label {POLICY_LABEL}=<policy name> to the alert",
                "group_key": group.group_key,
            },
            status_code=422,
        )
    name, where = chosen
    policy = find_policy(runtime.store.policies, name)
    if policy is None:
        return JSONResponse(
            {"error": unknown_policy(runtime.store.policies, name, where)}, status_code=404
        )
    store = runtime.store
    with store.write():  # the look at the episode and the start: one transaction
        if held := held_episode(runtime.escalations, store.meta, group):
            how = (
                "acknowledged"
                if held.status == EscalationStatus.ACKNOWLEDGED
                else "resolved in Slack"
            )
            return JSONResponse(
                {
                    "ok": True,
                    "created": False,
                    "escalation": held.id,
                    "group_key": group.group_key,
                    "detail": f"escalation {held.id} of this alert group was {how}; "
                    "nothing changed until the group resolves",
                }
            )
        record, created = runtime.escalations.start(
            policy,
            group.message,
            started_by=group.by,
            source=group.source,
            group_key=group.group_key,
        )
        if created:
            store.meta.set(EPISODE + group.group_key, record.id)
    answer: dict[str, Any] = {
        "ok": True,
        "created": created,
        "escalation": record.id,
        "policy": record.policy_name,
        "group_key": group.group_key,
    }
    if not created:
        answer["detail"] = (
            f"escalation {record.id} of this alert group is already running "
            f"(policy {quoted(record.policy_name)}); nothing changed"
        )
    return JSONResponse(answer)


# Who an alert's own `resolved` notification says resolved its escalation.
ALERT_RESOLVERS = frozenset({"Alertmanager", "Grafana"})


def held_episode(
    escalations: EscalationService, meta: MetaStore, group: AlertGroup
) -> EscalationRecord | None:
    """The group's escalation, if a person ended it (acknowledged it, or resolved it in
    Slack) and the group has kept firing since: Alertmanager sends a firing group again
    (`group_interval` when an alert joins, `repeat_interval`), and nobody must be called
    again for it. A group whose every firing alert started after that is a new episode
    (it resolved meanwhile without saying so, e.g. `send_resolved: false`). An escalation
    that ended with nobody acknowledging (exhausted) holds nothing: the next notification
    starts the chain again, since nobody is on it yet."""
    episode = meta.get(EPISODE + group.group_key)
    record = escalations.get(episode) if episode else None
    if record is None:
        return None
    by_a_person = record.status == EscalationStatus.ACKNOWLEDGED or (
        record.status == EscalationStatus.RESOLVED and record.ended_by not in ALERT_RESOLVERS
    )
    if not by_a_person:
        return None
    ended = datetime.fromisoformat(record.ended_at) if record.ended_at else None
    if group.firing_since and ended and group.firing_since > ended:
        return None
    return record


def chosen_policy(group: AlertGroup, query: str | None) -> tuple[str, str] | None:
    """The policy's name and where it came from: the alert's label `robocall_policy`
    (common to the group, else the first alert's) when it has one, since it was set on
    the rule itself; else the query parameter `policy`, the receiver's default."""
    if group.policy:
        return group.policy, f"the label {POLICY_LABEL}"
    if query and query.strip():
        return query.strip(), "the query parameter policy"
    return None


def find_policy(policies: PolicyStore, name: str) -> Policy | None:
    """The policy with this name (any case), or this id."""
    return policies.by_name(name) or policies.get(name)


def unknown_policy(policies: PolicyStore, name: str, where: str) -> str:
    """`no escalation policy named 'X' (from …); the policies are A, B`."""
    known = [p.name for p in policies.list()]
    listed = ", ".join(quoted(n) for n in known[:POLICIES_NAMED])
    if len(known) > POLICIES_NAMED:
        listed += f" and {len(known) - POLICIES_NAMED} more"
    hint = f"; the policies are {listed}" if known else "; there are no policies yet"
    return f"no escalation policy named {quoted(name)} (from {where}){hint}"


def _resolved(escalations: EscalationService, meta: MetaStore, group: AlertGroup) -> Response:
    """Stop the group's running escalation, whatever policy the notification names: a
    policy renamed or deleted meanwhile must not keep the phones ringing. The episode
    ends: the group firing later starts a new escalation."""
    with meta.db.write():
        record = escalations.resolve_group(group.group_key, by=group.by)
        meta.delete(EPISODE + group.group_key)
    if record is None:
        return JSONResponse(
            {
                "ok": True,
                "resolved": None,
                "group_key": group.group_key,
                "detail": "no escalation of this alert group is running; nothing changed",
            }
        )
    return JSONResponse({"ok": True, "resolved": record.id, "group_key": group.group_key})
