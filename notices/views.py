from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import Http404
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.utils.translation import ngettext
from django.views.decorators.http import require_http_methods, require_POST

from . import selectors, services
from .forms import EmailPreferencesForm
from .models import Notice


@login_required
def notice_list(request):
    page = Paginator(selectors.notices_for(request.user), 20).get_page(request.GET.get("page"))
    return render(request, "notices/list.html", {"page": page})


@login_required
def notice_detail(request, pk):
    try:
        notice = services.mark_read(request.user, pk)  # opening a notice reads it
    except Notice.DoesNotExist:
        raise Http404("No such notice")
    return render(request, "notices/detail.html", {"notice": notice})


@login_required
@require_POST
def mark_read(request, pk):
    try:
        services.mark_read(request.user, pk)
    except Notice.DoesNotExist:
        raise Http404("No such notice")
    return redirect("notices:list")


@login_required
@require_POST
def mark_all_read(request):
    count = services.mark_all_read(request.user)
    messages.success(
        request,
        ngettext("%(count)d notice marked as read.", "%(count)d notices marked as read.", count)
        % {"count": count},
    )
    return redirect("notices:list")


@login_required
@require_http_methods(["GET", "POST"])
def preferences(request):
    current = selectors.email_preferences(request.user)
    initial = {row["kind"]: row["email"] for row in current if not row["required"]}
    form = EmailPreferencesForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        services.set_email_preferences(request.user, form.wanted_kinds())
        messages.success(request, _("Your email preferences are saved."))
        return redirect("notices:preferences")
    required = [row for row in current if row["required"]]
    return render(request, "notices/preferences.html", {"form": form, "required": required})
