"""Prometheus metrics for /metrics: one registry, names shared by every part of the gateway."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

REGISTRY = CollectorRegistry(auto_describe=True)

CALLS = Counter("vm2mail_calls_total", "Voice webhooks answered, by outcome", ["outcome"], registry=REGISTRY)
RECORDINGS = Counter(
    "vm2mail_recordings_total",
    "Jobs accepted into the spool, by source and kind",
    ["source", "kind"],
    registry=REGISTRY,
)
DELIVERIES = Counter("vm2mail_deliveries_total", "Messages appended to IMAP folders", registry=REGISTRY)
FAILURES = Counter("vm2mail_failures_total", "Job failures, by reason", ["reason"], registry=REGISTRY)
SPOOL_DEPTH = Gauge("vm2mail_spool_depth", "Jobs in the spool, by state", ["state"], registry=REGISTRY)
RETRYING = Gauge(
    "vm2mail_spool_retrying", "Jobs in new/ waiting for a retry after a failed attempt", registry=REGISTRY
)
RETRYING_OLDEST_SECONDS = Gauge(
    "vm2mail_spool_retrying_oldest_seconds",
    "Age (since acknowledgement) of the oldest job waiting for a retry; 0 when none",
    registry=REGISTRY,
)
PIPELINE_SECONDS = Histogram(
    "vm2mail_pipeline_seconds",
    "Time from acknowledgement to the last IMAP APPEND of a job",
    buckets=(0.25, 0.5, 1, 2, 5, 10, 30, 60, 300, 1800),
    registry=REGISTRY,
)
STAGE_SECONDS = Histogram(
    "vm2mail_stage_seconds",
    "Time spent in one pipeline stage (fetch, transcode, compose, append)",
    ["stage"],
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30),
    registry=REGISTRY,
)
WATCHED_FOLDERS = Gauge("vm2mail_watched_folders", "IMAP folders the watcher follows", registry=REGISTRY)
NOTIFICATIONS = Counter(
    "vm2mail_notifications_total",
    "Notifications sent, by channel and kind",
    ["channel", "kind"],
    registry=REGISTRY,
)
MENU_STEPS = Counter("vm2mail_menu_steps_total", "Phone menu requests, by step", ["step"], registry=REGISTRY)
SMTP_MESSAGES = Counter(
    "vm2mail_smtp_messages_total", "SMTP ingress messages, by result", ["result"], registry=REGISTRY
)
SMTP_REPLY_SECONDS = Histogram(
    "vm2mail_smtp_reply_seconds",
    "SMTP ingress: time from the end of DATA (the message read in full) to the reply sent",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5),
    registry=REGISTRY,
)
ROUTES = Counter(
    "vm2mail_routes_total",
    "Routing decisions of the voice webhook, by reason (forward, away, outage, closed, pbx_down, ...)",
    ["reason"],
    registry=REGISTRY,
)
BREAKER_STATE = Gauge(
    "vm2mail_breaker_state",
    "PBX circuit breaker per forward target on this instance: 0 closed, 1 open, 2 half-open (probing)",
    ["target"],
    registry=REGISTRY,
)
BREAKER_TRANSITIONS = Counter(
    "vm2mail_breaker_transitions_total",
    "PBX circuit breaker state changes, by target and new state",
    ["target", "state"],
    registry=REGISTRY,
)
DIAL_RESULTS = Counter(
    "vm2mail_dial_results_total",
    "Dial results reported to the breaker, by result",
    ["result"],
    registry=REGISTRY,
)
SWITCH_READS = Counter(
    "vm2mail_switch_reads_total",
    "Switched-state reads on the call path, by source (cache, imap, stale: IMAP too slow or down)",
    ["source"],
    registry=REGISTRY,
)
