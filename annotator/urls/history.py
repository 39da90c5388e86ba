from django.urls import path

from annotator.views import history

urlpatterns = [
    path("projects/<int:project_id>/my-labels/", history.my_labels, name="my_labels"),
    path("projects/<int:project_id>/my-labels/<int:annotation_id>", history.my_label_change,
         name="my_label_change"),
]
