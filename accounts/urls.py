from django.contrib.auth import views as auth_views
from django.urls import path
from django.views.generic import RedirectView

from . import views

app_name = "accounts"

urlpatterns = [
    path("signup/", views.signup, name="signup"),
    path(
        "login/",
        auth_views.LoginView.as_view(template_name="registration/login.html"),
        name="login",
    ),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("password/reset/", views.PasswordResetView.as_view(), name="password_reset"),
    path(
        "password/reset/sent/",
        auth_views.PasswordResetDoneView.as_view(
            template_name="registration/password_reset_done.html"
        ),
        name="password_reset_done",
    ),
    path(
        "password/reset/<uidb64>/<token>/",
        views.PasswordResetConfirmView.as_view(),
        name="password_reset_confirm",
    ),
    path(
        "password/reset/done/",
        auth_views.PasswordResetCompleteView.as_view(
            template_name="registration/password_reset_complete.html"
        ),
        name="password_reset_complete",
    ),
    # where people (and other consoles) look for it first
    path("password_reset/", RedirectView.as_view(pattern_name="accounts:password_reset")),
    path("password/change/", views.PasswordChangeView.as_view(), name="password_change"),
    path("profile/", views.profile, name="profile"),
    path("profile/sign-out-everywhere/", views.sign_out_everywhere, name="sign_out_everywhere"),
    path("email/change/<str:token>/", views.confirm_email_change, name="confirm_email_change"),
    path("verify-email/resend/", views.resend_email_verification, name="resend_email_verification"),
    path("verify-email/<str:token>/", views.verify_email, name="verify_email"),
    path("verification/", views.verification_status, name="verification"),
    path("verification/<int:pk>/", views.verification_detail, name="verification_detail"),
    path("verification/new/<str:kind>/", views.verification_submit, name="verification_submit"),
    path(
        "verification/<int:pk>/document/<str:which>/",
        views.verification_document,
        name="verification_document",
    ),
    path("api-keys/", views.api_keys, name="api_keys"),
    path("staff/second-factor/", views.staff_otp, name="staff_otp"),
    path("api-keys/<int:pk>/revoke/", views.api_key_revoke, name="api_key_revoke"),
    path("agreement/", views.agreement, name="agreement"),
    path("agreement/<int:pk>/accept/", views.agreement_accept, name="agreement_accept"),
]
