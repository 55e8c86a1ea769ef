from __future__ import annotations

from django.urls import path

from play import views

app_name = "play"

urlpatterns = [
    path("", views.index, name="index"),
    path("api/account/", views.AccountView.as_view(), name="account"),
    path("api/zones/<slug:zone>/positions/", views.ZonePositionsView.as_view(), name="positions"),
]
