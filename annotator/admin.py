from django import forms
from django.contrib import admin, messages
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import format_html

from annotator.forms.projects import ModelNameInput, clean_model_name
from annotator.lib import webhook_targets
from annotator.lib.labelsets import validate_label_set
from annotator.models import (
    Alert,
    AlertRule,
    Annotation,
    ApiToken,
    HeadFit,
    ImportJob,
    Item,
    LabelFlag,
    Membership,
    ModelVersion,
    Prediction,
    Project,
    RegisteredModel,
    TrainingRun,
    VocabularyCheck,
    WebhookDelivery,
)
from annotator.selectors.projects import label_usage
from annotator.services.projects import project_settings_applied
from annotator.services.tokens import api_token_create


class ProjectForm(forms.ModelForm):
    class Meta:
        model = Project
        exclude = ["members"]  # noqa: DJ006 -- memberships are edited in the inline
        widgets = {"model_name": ModelNameInput}
        help_texts = {"labels": 'A list like [{"name": "negative", "key": "1", "color": '
                                '"#d62728"}, ...]. Rename or delete labels in use on the '
                                "project's Labels page in the app: their annotations follow."}

    def clean_model_name(self) -> str:
        return clean_model_name(self.cleaned_data["model_name"], kept=self.instance.model_name)

    def clean_labels(self) -> list[dict]:
        labels = validate_label_set(self.cleaned_data["labels"])
        if self.instance.pk:  # a name gone from the JSON would leave its annotations behind
            kept = {label["name"] for label in labels}
            gone = [name for name in self.instance.label_names if name not in kept]
            for name, uses in label_usage(self.instance, gone).items():
                self.add_error("labels", f"{name!r} is in use ({', '.join(uses)}): rename or "
                                         "delete it on the project's Labels page in the app.")
        return labels


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 1
    autocomplete_fields = ["user"]


@admin.register(Project)
class ProjectAdmin(admin.ModelAdmin):
    form = ProjectForm
    list_display = ["name", "text_kind", "strategy", "model", "created_at", "data_links"]
    search_fields = ["name"]
    inlines = [MembershipInline]
    actions = ["export_labeled_csv"]
    readonly_fields = ["readability_confirmed_model"]

    @admin.display(description="model")
    def model(self, obj: Project) -> str:
        return obj.effective_model_name

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        for note in project_settings_applied(project=obj, changed=set(form.changed_data)):
            self.message_user(request, note)

    @admin.display(description="data")
    def data_links(self, obj: Project) -> str:
        url = reverse("import_upload", args=[obj.pk])
        return format_html('<a href="{}">import / export</a>', url)

    @admin.action(description="Export labeled items (CSV for Excel)")
    def export_labeled_csv(self, request, queryset):
        from annotator.lib.downloads import attachment
        from annotator.services.exporting import export_rows

        if queryset.count() != 1:
            self.message_user(request, "Select exactly one project to export.", messages.ERROR)
            return None
        project = queryset.get()
        rows = export_rows(project=project, fmt="csv", labeled_only=True, bom=True)
        return attachment(rows, fmt="csv", name=f"{project.name}-labeled")


@admin.register(Item)
class ItemAdmin(admin.ModelAdmin):
    list_display = [
        "id", "project", "short_text", "kind", "split", "gold_label",
        "annotation_count", "required_labels", "final_label",
    ]  # fmt: skip
    list_filter = [
        "project", "split", "kind", "required_labels",
        ("final_label", admin.EmptyFieldListFilter), ("leased_to", admin.EmptyFieldListFilter),
    ]  # fmt: skip
    search_fields = ["text", "external_id", "=id"]
    raw_id_fields = ["leased_to", "scored_version", "adjudicated_by"]
    readonly_fields = ["annotation_count", "adjudicated_at"]
    list_select_related = ["project"]

    @admin.display(description="text")
    def short_text(self, obj: Item) -> str:
        return obj.text[:80]


@admin.register(Annotation)
class AnnotationAdmin(admin.ModelAdmin):
    list_display = ["id", "item_id", "labeler", "label", "picked_by", "created_at"]
    list_filter = ["item__project", "label", "picked_by", "labeler"]
    search_fields = ["labeler__username", "item__text", "=item__id"]
    date_hierarchy = "created_at"
    raw_id_fields = ["item", "model_version"]
    list_select_related = ["labeler"]


class ServiceRecordAdmin(admin.ModelAdmin):
    """View only: the services and workers write these rows (import_file, training_request,
    train_round, model_version_activate); an edit by hand would bypass them."""

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


@admin.register(ImportJob)
class ImportJobAdmin(ServiceRecordAdmin):
    list_display = ["id", "project", "filename", "status", "imported", "duplicates", "rejected", "created_at"]
    list_filter = ["status", "project"]


@admin.register(TrainingRun)
class TrainingRunAdmin(ServiceRecordAdmin):
    list_display = ["id", "project", "status", "trigger", "created_at", "finished_at"]
    list_filter = ["status", "project"]

    def has_delete_permission(self, request, obj=None) -> bool:
        """Not while a worker owns the run, nor then its project (the worker would save into
        a deleted run and a second run could start beside it)."""
        busy = obj is not None and obj.status in (TrainingRun.Status.QUEUED,
                                                  TrainingRun.Status.RUNNING)
        return not busy and super().has_delete_permission(request, obj)


@admin.register(ModelVersion)
class ModelVersionAdmin(ServiceRecordAdmin):
    """Activate a version on the project's Models page (model_version_activate)."""

    list_display = ["project", "version", "is_active", "label_count", "created_at"]
    list_filter = ["project", "is_active"]


@admin.register(HeadFit)
class HeadFitAdmin(ServiceRecordAdmin):
    """The fast loop's refits: what ranked the queue, on how many labels, how fast."""

    list_display = ["id", "project", "labels", "strategy", "trusted", "kappa", "pseudo_labels",
                    "ranked", "seconds", "created_at"]
    list_filter = ["project", "strategy", "trusted"]


@admin.register(LabelFlag)
class LabelFlagAdmin(ServiceRecordAdmin):
    """Suspicious labels; resolve them by adjudicating on the project's Label review page."""

    list_display = ["id", "project", "model_version", "rank", "item", "given_label",
                    "suggested_label", "status", "created_at"]
    list_filter = ["project", "status"]
    list_select_related = ["project", "model_version", "item"]


@admin.register(Prediction)
class PredictionAdmin(admin.ModelAdmin):
    list_display = ["item_id", "model_version", "label", "uncertainty"]
    raw_id_fields = ["item", "model_version"]


@admin.register(VocabularyCheck)
class VocabularyCheckAdmin(admin.ModelAdmin):
    list_display = ["project", "model_name", "unknown_share", "truncated_share", "texts",
                    "unreadable", "created_at"]
    list_filter = ["project", "unreadable", "model_name"]
    raw_id_fields = ["import_job"]


@admin.register(RegisteredModel)
class RegisteredModelAdmin(admin.ModelAdmin):
    """Registered with `manage.py register_model`; the files live in MODEL_DIR/registered."""

    list_display = ["name", "model_type", "parameters", "vocab_size", "size_bytes", "created_at"]
    readonly_fields = ["path", "source", "model_type", "parameters", "vocab_size", "size_bytes"]

    def has_add_permission(self, request) -> bool:
        return False


# --- live monitoring ----------------------------------------------------------

class AlertRuleForm(forms.ModelForm):
    webhook_url = forms.URLField(max_length=500, required=False, assume_scheme="https")

    class Meta:
        model = AlertRule
        fields = "__all__"

    def clean_webhook_url(self) -> str:
        url = self.cleaned_data["webhook_url"]
        if url and (problem := webhook_targets.url_problem(url)):
            raise forms.ValidationError(problem)
        return url


@admin.register(AlertRule)
class AlertRuleAdmin(admin.ModelAdmin):
    form = AlertRuleForm
    list_display = ["name", "project", "label", "threshold", "window", "is_active", "above",
                    "last_share"]
    list_filter = ["project", "is_active"]
    readonly_fields = ["above", "last_share", "created_at"]


class WebhookDeliveryInline(admin.TabularInline):
    model = WebhookDelivery
    extra = 0
    can_delete = False
    readonly_fields = ["attempt", "url", "status_code", "delivered", "error", "retry_in",
                       "created_at"]
    fields = readonly_fields

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Alert)
class AlertAdmin(admin.ModelAdmin):
    list_display = ["rule", "project", "share", "items", "created_at", "acknowledged_at"]
    list_filter = ["project"]
    readonly_fields = ["rule", "project", "share", "items", "created_at", "acknowledged_at",
                       "acknowledged_by"]
    inlines = [WebhookDeliveryInline]


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(admin.ModelAdmin):
    """Every attempt to POST an alert, read-only: a log, written by the webhook task."""

    list_display = ["alert", "attempt", "status_code", "delivered", "retry_in", "created_at"]
    list_filter = ["delivered"]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


# --- API tokens -------------------------------------------------------------------

@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    """Stored hashed: a new token's key is shown once, on the page after Save. A token is not
    changed, it is deleted (revoked) and made again."""

    list_display = ["user", "prefix", "created_at"]
    search_fields = ["user__username"]
    fields = ["user"]

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def save_model(self, request, obj, form, change) -> None:
        obj.key = api_token_create(user=obj.user)
        made = ApiToken.objects.get(user=obj.user)
        obj.pk, obj.prefix, obj.digest, obj.created_at = (made.pk, made.prefix, made.digest,
                                                          made.created_at)

    def response_add(self, request, obj, post_url_continue=None):
        return TemplateResponse(request, "admin/annotator/apitoken/created.html", {
            **self.admin_site.each_context(request), "title": "API token created",
            "opts": self.model._meta, "token": obj, "key": obj.key,
        })
