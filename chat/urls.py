from django.urls import path

from . import views

app_name = "chat"

urlpatterns = [
    path("", views.index, name="index"),
    path("chat/new/", views.new_chat, name="new"),
    path("chat/<uuid:session_id>/", views.session_page, name="session"),
    path("chat/<uuid:session_id>/stop/", views.stop, name="stop"),
]
