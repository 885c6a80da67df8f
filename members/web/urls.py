from django.urls import path

from . import oidc, views

app_name = "members"

urlpatterns = [
    # Before django.contrib.auth's own (project/urls.py): the provider's button and LOCAL_PASSWORDS.
    path("login/", views.LoginView.as_view(), name="login"),
    path("oidc/start/", oidc.start, name="oidc-start"),
    path("oidc/callback/", oidc.callback, name="oidc-callback"),
    path("invite/<str:token>/sign-in/", oidc.invite_sign_in, name="oidc-invite"),
    path("invite/new/", views.new_invite, name="new-invite"),
    # Anyone with the link, no login: the token is the only key.
    path("invite/<str:token>/", views.invite, name="invite"),
]
