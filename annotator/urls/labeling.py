from django.urls import path

from annotator.views import label_review, labeling

urlpatterns = [
    path("projects/<int:project_id>/label/", labeling.label_page, name="label_page"),
    path("projects/<int:project_id>/label/next", labeling.label_next, name="label_next"),
    path("projects/<int:project_id>/label/submit", labeling.label_submit, name="label_submit"),
    path("projects/<int:project_id>/label/skip", labeling.label_skip, name="label_skip"),
    path("projects/<int:project_id>/label/undo", labeling.label_undo, name="label_undo"),
    path("projects/<int:project_id>/agreement/", labeling.agreement_page, name="agreement"),
    path(
        "projects/<int:project_id>/items/<int:item_id>/adjudicate",
        labeling.adjudicate,
        name="adjudicate",
    ),
    path("projects/<int:project_id>/label-review/", label_review.label_review_page,
         name="label_review"),
    path("projects/<int:project_id>/items/<int:item_id>/review", label_review.item_review,
         name="item_review"),
    path("projects/<int:project_id>/items/<int:item_id>/explanation", label_review.item_explanation,
         name="item_explanation"),
]
