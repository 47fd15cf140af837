"""Notifications: SMS and e-mail when a voicemail lands, reminders while it stays unheard, admin alerts.

Layer: core. May import: jobs, services, config, errors and the base modules; never edges.
"""

from vm2mail.notify.notifier import Notifier

__all__ = ["Notifier"]
