from django.utils.translation import gettext_lazy as _


def portal(request):
    return {"portal_name": _("Model API balance portal")}
