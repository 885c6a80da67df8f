from django.urls import path

from . import views, views_share

app_name = "chat"

urlpatterns = [
    path("", views.index, name="index"),
    path("chat/new/", views.new_chat, name="new"),
    path("chat/<uuid:session_id>/", views.session_page, name="session"),
    path("chat/<uuid:session_id>/older/", views.older, name="older"),
    path("chat/<uuid:session_id>/rename/", views.rename, name="rename"),
    path("chat/<uuid:session_id>/delete/", views.delete, name="delete"),
    path("chat/<uuid:session_id>/stop/", views.stop, name="stop"),
    path("chat/<uuid:session_id>/share/", views_share.share, name="share"),
    path("chat/<uuid:session_id>/share/new/", views_share.create, name="share-create"),
    path("chat/<uuid:session_id>/share/<int:link_id>/revoke/", views_share.revoke, name="share-revoke"),
    # Anyone with the link, no login: the token is the only key.
    path("share/<str:token>/", views_share.shared, name="shared"),
    path("share/<str:token>/older/", views_share.shared_older, name="shared-older"),
]
