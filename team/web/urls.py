from django.urls import path

from . import views

app_name = "team"

urlpatterns = [
    path("usage/", views.dashboard, name="usage"),
    path("usage.csv", views.usage_csv, name="usage-csv"),
    path("search/", views.team_search, name="search"),
]
