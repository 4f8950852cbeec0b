from . import selectors


def notices(request):
    """Unread count for the header; one COUNT query, only for signed-in users."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    return {"unread_notice_count": selectors.unread_count(user)}
