from django.urls import path

from . import checks, review, views

app_name = "tasks"

urlpatterns = [
    path("", views.board, name="board"),
    path("new/", views.new_task, name="new"),
    path("checks/", checks.own_checks, name="own-checks"),
    path("<int:task_id>/", views.detail, name="detail"),
    path("<int:task_id>/diff/", review.diff, name="diff"),
    path("<int:task_id>/review/comments/", review.add_comment, name="review-comment"),
    path("<int:task_id>/review/comments/<int:comment_id>/delete/", review.delete_comment, name="review-delete"),
    path("<int:task_id>/review/send/", review.send_review, name="review-send"),
    path("<int:task_id>/pull-request/refresh/", views.refresh_pull_request, name="refresh-pr"),
    path("<int:task_id>/pull-request/feedback/send/", views.send_feedback, name="feedback-send"),
    path("<int:task_id>/<slug:name>/", views.action, name="action"),
]
