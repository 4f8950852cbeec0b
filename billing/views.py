from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_http_methods

from accounts.services import set_low_balance_threshold

from . import selectors
from .forms import ThresholdForm


@login_required
@require_http_methods(["GET", "POST"])
def balance(request):
    """The user's balance by bucket, lots, grants with expiry and recent charges."""
    account = request.user.balance_account
    current = account.low_balance_threshold
    form = ThresholdForm(
        request.POST or None,
        initial={"threshold": f"{current.amount:.2f}" if current is not None else ""},
    )
    if request.method == "POST" and form.is_valid():
        set_low_balance_threshold(account, form.cleaned_data["threshold"])
        messages.success(request, _("Low-balance notice updated."))
        return redirect("billing:balance")
    context = {
        "account": account,
        "summary": selectors.balance_summary(account),
        "lots": list(selectors.lots_for(account)[:50]),
        "grants": list(selectors.grants_for(account)[:50]),
        "charges": selectors.recent_charges(account, limit=20),
        "form": form,
    }
    return render(request, "billing/balance.html", context)
