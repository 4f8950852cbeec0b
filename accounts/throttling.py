"""Login throttling and lockout (django-axes) for users and staff alike.

`ThrottledLoginBackend` is axes' backend for every login made through a request (the
user login page, the admin login). An `authenticate()` call without a request (a
management command, a test's `client.login`) is no login attempt from the network and is
left to the ModelBackend after it, so throttling never gets in the way of scripts.
"""

from axes.backends import AxesStandaloneBackend


class ThrottledLoginBackend(AxesStandaloneBackend):
    def authenticate(self, request=None, username=None, password=None, **kwargs):
        if request is None:
            return None
        return super().authenticate(request, username=username, password=password, **kwargs)
