"""Event types security publishes through the hub's events (webhooks and notifications)."""

from hub.events import register_event_type

ALERT_CREATED = "alert.created"

register_event_type(ALERT_CREATED, "A new security alert was raised (repeats of an open alert only raise its count).")
