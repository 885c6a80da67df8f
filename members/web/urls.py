from django.urls import path

from . import views

app_name = "members"

urlpatterns = [
    path("invite/new/", views.new_invite, name="new-invite"),
    # Anyone with the link, no login: the token is the only key.
    path("invite/<str:token>/", views.invite, name="invite"),
]
