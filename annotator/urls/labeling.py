from django.urls import path

from annotator.views import label_review, labeling

urlpatterns = [
    path("projects/<int:pk>/label/", labeling.label_page, name="label_page"),
    path("projects/<int:pk>/label/next", labeling.label_next, name="label_next"),
    path("projects/<int:pk>/label/submit", labeling.label_submit, name="label_submit"),
    path("projects/<int:pk>/label/skip", labeling.label_skip, name="label_skip"),
    path("projects/<int:pk>/label/undo", labeling.label_undo, name="label_undo"),
    path("projects/<int:pk>/agreement/", labeling.agreement_page, name="agreement"),
    path(
        "projects/<int:pk>/items/<int:item_pk>/adjudicate",
        labeling.adjudicate,
        name="adjudicate",
    ),
    path("projects/<int:pk>/label-review/", label_review.label_review_page, name="label_review"),
    path("projects/<int:pk>/items/<int:item_pk>/review", label_review.item_review,
         name="item_review"),
    path("projects/<int:pk>/items/<int:item_pk>/explanation", label_review.item_explanation,
         name="item_explanation"),
]
