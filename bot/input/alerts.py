"""Alert webhooks, read: Prometheus Alertmanager's (`version` "4") and Grafana alerting's.

The shapes are the upstream projects' own:

- Alertmanager, `notify/webhook/webhook.go` (`Message`: `template.Data` plus
  `version`, `groupKey`, `truncatedAlerts`) and the `<webhook_config>` section of
  `docs/configuration.md`;
- Grafana unified alerting, `receivers/webhook/v1/webhook.go` in grafana/alerting
  (`webhookMessage`: `templates.ExtendedData` plus `version` "1", `groupKey`,
  `truncatedAlerts`, `orgId`, `title`, `state`, `message`) and Grafana's
  *Configure the webhook notifier* page.

Real examples of both are in `tests/data/alerts/`. Fields neither project sends
are ignored, so a newer version that adds some still reads. Go writes a nil map
as `null`, so every map may be `null` and is read as empty.

What comes out is an `AlertGroup`: the group's key, as the escalation service keys
it (`alertmanager:<groupKey>`, `grafana:<groupKey>`), firing or resolved, the
policy the alert names (label `robocall_policy`), and the text of the call.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, Protocol
from urllib.parse import quote

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

from bot.text import clip, quoted

POLICY_LABEL = "robocall_policy"  # the alert label that names the policy
TOKEN_KEY = "alert_webhook_token"  # where a generated ALERT_WEBHOOK_TOKEN is kept (meta)
# The longest escalation message built from an alert: it is read out in the call and
# shown in Slack; a whole group's annotations can be kilobytes.
MAX_MESSAGE = 600
MAX_SUMMARY = 300  # of one summary or description, within the message
MAX_ERRORS = 5  # field errors named in one refusal

Status = Literal["firing", "resolved"]
Source = Literal["alertmanager", "grafana"]


def _no_null_maps(value: object) -> object:
    """`null` (a nil Go map) read as an empty map."""
    return {} if value is None else value


class _Payload(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class Alert(_Payload):
    """One alert of a notification (Alertmanager's `template.Alert`)."""

    status: Status
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    startsAt: str = ""  # RFC 3339, nanoseconds; Go's zero time "0001-01-01T00:00:00Z"
    endsAt: str = ""
    generatorURL: str = ""
    fingerprint: str = ""

    _maps = field_validator("labels", "annotations", mode="before")(_no_null_maps)


class GrafanaAlert(Alert):
    """One alert of a Grafana notification (`templates.ExtendedAlert`)."""

    silenceURL: str = ""
    dashboardURL: str = ""
    panelURL: str = ""
    imageURL: str = ""
    values: dict[str, float] | None = None
    valueString: str = ""


class AlertmanagerNotification(_Payload):
    """Alertmanager's webhook body (`version` "4")."""

    version: Literal["4"]
    groupKey: str = Field(min_length=1)
    truncatedAlerts: int = Field(0, ge=0)
    status: Status
    receiver: str = ""
    groupLabels: dict[str, str] = Field(default_factory=dict)
    commonLabels: dict[str, str] = Field(default_factory=dict)
    commonAnnotations: dict[str, str] = Field(default_factory=dict)
    externalURL: str = ""
    alerts: list[Alert] = Field(min_length=1)

    _maps = field_validator("groupLabels", "commonLabels", "commonAnnotations", mode="before")(
        _no_null_maps
    )


class GrafanaNotification(_Payload):
    """Grafana alerting's webhook body (contact point of type webhook, `version` "1")."""

    version: Literal["1"]
    groupKey: str = Field(min_length=1)
    truncatedAlerts: int = Field(0, ge=0)
    status: Status
    receiver: str = ""
    orgId: int | None = None
    groupLabels: dict[str, str] = Field(default_factory=dict)
    commonLabels: dict[str, str] = Field(default_factory=dict)
    commonAnnotations: dict[str, str] = Field(default_factory=dict)
    externalURL: str = ""
    title: str = ""
    state: str = ""  # "alerting" or "ok"; deprecated upstream, `status` says the same
    message: str = ""
    alerts: list[GrafanaAlert] = Field(min_length=1)

    _maps = field_validator("groupLabels", "commonLabels", "commonAnnotations", mode="before")(
        _no_null_maps
    )


class BadAlert(Exception):
    """A body that is not an alert notification we read: `status` (400 or 422) and a
    message naming the field, the value and what would be right."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class AlertGroup:
    """One notification about one alert group, as the app uses it."""

    source: Source
    group_key: str  # "alertmanager:<groupKey>" or "grafana:<groupKey>"
    status: Status
    policy: str | None  # from the label robocall_policy (common, else the first alert's)
    message: str  # the escalation's message: what fires, its summary, severity, instance
    alert_count: int  # alerts in this notification, truncated ones included
    firing_count: int
    # When the longest-firing of its firing alerts started (None: none says): alerts
    # that all started after someone acknowledged (or resolved in Slack) the group's
    # escalation are a new episode, not a repeat.
    firing_since: datetime | None = None

    @property
    def by(self) -> str:
        """Who an escalation started or stopped by this alert says it was by."""
        return "Alertmanager" if self.source == "alertmanager" else "Grafana"


FORMATS = 'Alertmanager (version "4") or Grafana alerting (version "1")'


def read_alert(body: bytes | str) -> AlertGroup:
    """An Alertmanager or Grafana webhook body, read; BadAlert when it is neither.

    Not JSON, or JSON that is not an object: 400. An object that is neither format
    (no `version`, or another one), or one of them with a field wrong or missing: 422,
    naming the field, the value found and what was expected.
    """
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadAlert(400, f"the body is not JSON ({exc}); expected {FORMATS}") from None
    except RecursionError:  # `[[[[…` a million deep: no alert is nested like that
        raise BadAlert(400, f"the body is JSON nested too deep; expected {FORMATS}") from None
    if not isinstance(data, dict):
        raise BadAlert(
            400, f"the body is a JSON {_json_type(data)}, not an object; expected {FORMATS}"
        )
    version = data.get("version")
    model: type[AlertmanagerNotification] | type[GrafanaNotification]
    if version == "4":
        model, source, name = AlertmanagerNotification, "alertmanager", "Alertmanager"
    elif version == "1":
        model, source, name = GrafanaNotification, "grafana", "Grafana"
    elif "ruleId" in data or "evalMatches" in data:
        raise BadAlert(
            422,
            "this is a legacy Grafana alert (dashboard alerting: ruleId, evalMatches), which "
            "has no alert group; use Grafana's unified alerting with a webhook contact point",
        )
    else:
        found = "missing" if version is None else quoted(json.dumps(version), 20)
        raise BadAlert(
            422, f"field 'version' is {found}: this is neither format; expected {FORMATS}"
        )
    try:
        notification = model.model_validate(data)
    except ValidationError as exc:
        raise BadAlert(422, f"not a valid {name} notification: {describe(exc)}") from None
    return group_of(notification, source)


def describe(exc: ValidationError) -> str:
    """The first few field errors: which field, what it held, what was expected."""
    parts = []
    for error in exc.errors()[:MAX_ERRORS]:
        where = ".".join(str(p) for p in error["loc"]) or "body"
        if error["type"] == "missing":
            parts.append(f"field '{where}' is missing")
            continue
        found = error.get("input")
        value = quoted(found if isinstance(found, str) else json.dumps(found, default=str), 40)
        parts.append(f"field '{where}' is {value}: {error['msg'].lower()}")
    more = len(exc.errors()) - MAX_ERRORS
    return "; ".join(parts) + (f"; and {more} more" if more > 0 else "")


def group_of(
    notification: AlertmanagerNotification | GrafanaNotification, source: Source
) -> AlertGroup:
    """The `AlertGroup` a validated notification is about."""
    alerts = notification.alerts
    first = alerts[0]
    policy = notification.commonLabels.get(POLICY_LABEL) or first.labels.get(POLICY_LABEL)
    firing = [a for a in alerts if a.status == "firing"]
    starts = [t for a in firing if (t := parse_time(a.startsAt)) is not None]
    return AlertGroup(
        source=source,
        group_key=f"{source}:{notification.groupKey}",
        status=notification.status,
        policy=policy.strip() if policy and policy.strip() else None,
        message=alert_message(notification),
        alert_count=len(alerts) + notification.truncatedAlerts,
        firing_count=len(firing) + (notification.truncatedAlerts if firing else 0),
        firing_since=min(starts, default=None),
    )


# Labels worth saying after the summary, in this order, when they are known.
DETAIL_LABELS = ("severity", "instance", "job", "namespace", "service")


def alert_message(notification: AlertmanagerNotification | GrafanaNotification) -> str:
    """The escalation's text: what fires, its summary (or description), and the
    labels that say how bad and where, e.g. `HighErrorRate: 5% of requests fail
    (severity critical, instance api-1:9100; 3 alerts firing)`.

    Plain text, as the alert wrote it: the Slack views escape it, and the call reads it.
    """
    alerts = [a for a in notification.alerts if a.status == "firing"] or notification.alerts
    first = alerts[0]
    common_labels = notification.commonLabels
    common_notes = notification.commonAnnotations

    def label(name: str) -> str:
        return common_labels.get(name) or first.labels.get(name) or ""

    def note(name: str) -> str:
        return common_notes.get(name) or first.annotations.get(name) or ""

    title = label("alertname") or _grafana_title(notification) or "Alert"
    summary = note("summary") or note("description") or note("message")
    text = title + (f": {clip(_one_line(summary), MAX_SUMMARY)}" if summary else "")
    details = []
    for name in DETAIL_LABELS:
        values = sorted({a.labels[name] for a in alerts if a.labels.get(name)})
        if not values:
            continue
        shown = values[0] if len(values) == 1 else f"{values[0]} and {len(values) - 1} more"
        details.append(f"{name} {shown}")
    count = len(alerts) + notification.truncatedAlerts
    if count > 1:
        word = "firing" if first.status == "firing" else "resolved"
        details.append(f"{count} alerts {word}")
    if details:
        text += f" ({', '.join(details)})"
    return clip(_one_line(text), MAX_MESSAGE)


_RFC3339 = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)$")


def parse_time(text: str) -> datetime | None:
    """An RFC 3339 time as Go writes it (up to nanoseconds), or None: Go's zero time
    (year 1, "not set") and anything unreadable."""
    match = _RFC3339.match(text.strip())
    if not match or text.startswith("0001-"):
        return None
    whole, fraction, zone = match.groups()
    micros = (fraction or "0")[:6].ljust(6, "0")
    try:
        parsed = datetime.fromisoformat(f"{whole}.{micros}{'+00:00' if zone == 'Z' else zone}")
    except ValueError:
        return None
    return parsed.astimezone(UTC)


def _grafana_title(notification: AlertmanagerNotification | GrafanaNotification) -> str:
    return notification.title if isinstance(notification, GrafanaNotification) else ""


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _json_type(value: Any) -> str:
    if isinstance(value, list):
        return "array"
    if isinstance(value, str):
        return "string"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    return "number"


# ---------------------------------------------------------------- the token and the URL


class TokenStore(Protocol):
    """Where a generated token is kept (`bot.store.meta.MetaStore`)."""

    def token(self, key: str, configured: str | None) -> str: ...


def webhook_token(configured: SecretStr | str | None, meta: TokenStore) -> str:
    """ALERT_WEBHOOK_TOKEN: the configured one, or the one generated on first start and
    kept in the database (the same in every process, and across restarts)."""
    if isinstance(configured, SecretStr):
        configured = configured.get_secret_value()
    return meta.token(TOKEN_KEY, configured.strip() if configured else None)


def webhook_url(public_url: str, token: str, policy: str | None = None) -> str:
    """The URL to give Alertmanager or Grafana, `?policy=` added when one is named."""
    url = f"{public_url.rstrip('/')}/alerts/{token}"
    return url + (f"?policy={quote(policy, safe='')}" if policy else "")
