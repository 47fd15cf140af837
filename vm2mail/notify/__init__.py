"""Notifications: SMS and e-mail when a voicemail lands, reminders while it stays unheard, admin alerts."""

from vm2mail.notify.notifier import Notifier

__all__ = ["Notifier"]
