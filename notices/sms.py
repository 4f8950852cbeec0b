"""Pluggable SMS delivery: settings.SMS_BACKEND is the dotted path of a backend class.

A backend has `send(phone: str, text: str) -> None` and raises on failure.
"""

import logging
import threading

from django.conf import settings
from django.utils.module_loading import import_string

logger = logging.getLogger(__name__)


class LoggingSMSBackend:
    """Default: records that a message would be sent, without the number or the text."""

    def send(self, phone, text):
        logger.info("SMS handed to the logging backend (%d characters)", len(text))


class LocmemSMSBackend:
    """For tests: keeps messages in `LocmemSMSBackend.outbox`."""

    outbox: list = []
    _lock = threading.Lock()

    def send(self, phone, text):
        with self._lock:
            type(self).outbox.append((phone, text))


def get_sms_backend():
    return import_string(settings.SMS_BACKEND)()
