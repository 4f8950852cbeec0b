from django.urls import path

from . import views

app_name = "topups"

urlpatterns = [
    path("", views.start, name="start"),
    path("history/", views.history, name="history"),
    path("<int:pk>/", views.detail, name="detail"),
    path("<int:pk>/cancel/", views.cancel, name="cancel"),
    path("<int:pk>/pay/", views.pay, name="pay"),
    path("lot/<int:lot_id>/", views.by_lot, name="by_lot"),
    path("alipay/notify/", views.alipay_notify, name="alipay_notify"),
    path("alipay/return/", views.alipay_return, name="alipay_return"),
    path("sandbox/gateway/", views.sandbox_gateway, name="sandbox_gateway"),
    path("sandbox/refunds/", views.sandbox_refunds, name="sandbox_refunds"),
]
