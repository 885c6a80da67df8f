from django.urls import path, register_converter

from . import memory, views

app_name = "workspace"


class KindConverter:
    regex = "chat|task"

    def to_python(self, value: str) -> str:
        return value

    def to_url(self, value: str) -> str:
        return value


class PlaceConverter:
    """A chat's UUID or a task's number: no other text reaches a view as an id."""

    regex = "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|[0-9]{1,12}"

    def to_python(self, value: str) -> str:
        return value

    def to_url(self, value: str) -> str:
        return str(value)


register_converter(KindConverter, "kind")
register_converter(PlaceConverter, "place")

urlpatterns = [
    path("<kind:kind>/<place:pk>/files/", views.files_page, name="files"),
    path("<kind:kind>/<place:pk>/files/tree/", views.tree, name="tree"),
    path("<kind:kind>/<place:pk>/files/download/", views.download, name="download"),
    path("<kind:kind>/<place:pk>/files/image/", views.image, name="image"),
    path("<kind:kind>/<place:pk>/files/zip/", views.zipped, name="zip"),
    path("<kind:kind>/<place:pk>/files/upload/", views.upload, name="upload"),
    path("<kind:kind>/<place:pk>/files/new/", views.new, name="new"),
    path("<kind:kind>/<place:pk>/files/rename/", views.rename, name="rename"),
    path("<kind:kind>/<place:pk>/files/delete/", views.delete, name="delete"),
    path("<kind:kind>/<place:pk>/files/save/", views.save, name="save"),
    path("<kind:kind>/<place:pk>/changes/", views.changes_page, name="changes"),
    path("<kind:kind>/<place:pk>/changes/<slug:action>/", views.change_action, name="change"),
    path("<kind:kind>/<place:pk>/terminal/", views.terminal_page, name="terminal"),
    path("<kind:kind>/<place:pk>/memory/", memory.memory_page, name="memory"),
    path("project/<str:key>/memory/", memory.project_memory, name="memory-project"),
    path("memory/preview/", memory.preview, name="memory-preview"),
]
