from django.contrib.auth import views as auth_views
from django.urls import path

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
