"""Email backends for delivery tests: record sends thread-safely, fail on demand."""

import smtplib
import threading

from django.core.mail.backends.base import BaseEmailBackend


class RecordingEmailBackend(BaseEmailBackend):
    """Keeps every message sent (across threads) in `sent`; fails while `failures` > 0."""

    sent: list = []
    failures = 0
    always_fail = False
    lock = threading.Lock()

    @classmethod
    def reset(cls, failures=0, always_fail=False):
        with cls.lock:
            cls.sent = []
            cls.failures = failures
            cls.always_fail = always_fail

    def send_messages(self, messages):
        with type(self).lock:
            if type(self).always_fail or type(self).failures > 0:
                type(self).failures = max(type(self).failures - 1, 0)
                raise smtplib.SMTPServerDisconnected("Connection unexpectedly closed")
            type(self).sent.extend(messages)
        return len(messages)


class FailingSMSBackend:
    def send(self, phone, text):
        raise ConnectionError("SMS gateway unavailable")
