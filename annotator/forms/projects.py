"""Forms of the project pages: the settings and the label set (a row per label)."""

from django import forms
from django.core.validators import MaxValueValidator, MinValueValidator
from django.utils.html import format_html, format_html_join

from annotator.lib.labelsets import MAX_LABELS, PALETTE, validate_label_set
from annotator.models import Project
from annotator.services.encoders import encoder_choices, encoder_name_problem
from trainer.zero_shot import default_description

SETTINGS_FIELDS = [
    "name", "description", "text_kind",
    "overlap_percent", "overlap_labelers", "label_gold_by_people", "show_suggestions",
    "bulk_labeling_by_labelers", "bulk_labels_in_training",
    "model_name", "retrain_min_new_labels", "retrain_every_minutes", "epochs",
    "strategy", "fast_loop_every", "cold_start_diversity", "self_training", "class_sample_share",
    "guidelines",
]  # fmt: skip
LIMITS = {  # field: (min, max); the model fields only say "not negative"
    "overlap_percent": (0, 100),
    "overlap_labelers": (1, 10),
    "epochs": (1, 50),
    "fast_loop_every": (0, 10_000),
    "class_sample_share": (0, 1),
}


class ModelNameInput(forms.TextInput):
    """A text field that suggests the built-in and registered models (free text stays allowed)."""

    def render(self, name, value, attrs=None, renderer=None):
        attrs = {**(attrs or {}), "list": "model-name-choices", "size": 60}
        options = format_html_join("", '<option value="{}">{}</option>', encoder_choices())
        return format_html('{}<datalist id="model-name-choices">{}</datalist>',
                           super().render(name, value, attrs, renderer), options)


def clean_model_name(name: str, *, kept: str = "") -> str:
    """A model a project may be set to from the app; `kept` (the project's current model,
    perhaps set from the command line) stays valid while it is not changed."""
    name = name.strip()
    if name and name == kept:
        return name
    problem = encoder_name_problem(name)
    if problem:
        raise forms.ValidationError(problem)
    return name


class ProjectSettingsForm(forms.ModelForm):
    class Meta:
        model = Project
        fields = SETTINGS_FIELDS
        widgets = {
            "model_name": ModelNameInput,
            "description": forms.Textarea(attrs={"rows": 2}),
            "guidelines": forms.Textarea(attrs={"rows": 12}),
        }
        help_texts = {
            "model_name": "multilingual-e5-small (reads Chinese and English), all-MiniLM-L6-v2 "
                          "(English only, faster) or a model the operator registered "
                          "(manage.py register_model); empty = the platform default.",
            "retrain_min_new_labels": "Retrain once this many new labels came in (0 = off).",
            "retrain_every_minutes": "Or retrain this often while new labels come in (0 = off).",
            "epochs": "Passes over the labeled data per training run.",
            "guidelines": "Markdown: headings, lists, **bold**, links, tables. Shown on the "
                          "labeling page (panel and ? help).",
        }

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for name, (low, high) in LIMITS.items():
            field = self.fields[name]
            field.validators += [MinValueValidator(low), MaxValueValidator(high)]
            field.widget.attrs.update(min=low, max=high)

    def clean_model_name(self) -> str:
        return clean_model_name(self.cleaned_data["model_name"], kept=self.instance.model_name)


class LabelForm(forms.Form):
    """One label. `original` is the name it had when the page was shown: a different name
    on save is a rename (its annotations follow)."""

    original = forms.CharField(required=False, widget=forms.HiddenInput)
    # no max_length: the browser would cut a longer name without a word (maxlength);
    # validate_label_set says "at most NAME_MAX_LENGTH fit" instead
    name = forms.CharField(required=False)
    key = forms.CharField(required=False, max_length=1, strip=False,
                          widget=forms.TextInput(attrs={"size": 2, "maxlength": 1}))
    color = forms.CharField(required=False, widget=forms.TextInput(attrs={"type": "color"}))
    # no max_length either (validate_label_set says how long it may be); empty: the default
    # sentence from the name (trainer.zero_shot.default_description), shown as a placeholder
    description = forms.CharField(required=False, widget=forms.TextInput(attrs={"size": 40}))
    position = forms.IntegerField(required=False, min_value=1,
                                  widget=forms.NumberInput(attrs={"class": "position"}))
    delete = forms.BooleanField(required=False)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        name = self.initial.get("name") or "<name>"  # what an empty description stands for
        self.fields["description"].widget.attrs["placeholder"] = default_description(name)


class BaseLabelFormSet(forms.BaseFormSet):
    """The label set as rows; after is_valid(): `labels` (normalised, in order) and `renamed`
    ({old name: new name})."""

    def get_form_kwargs(self, index):
        if index < self.initial_form_count():
            return {}
        # an empty row gets a colour no label has yet
        used = {row.get("color") for row in self.initial or []}
        free = [color for color in PALETTE if color not in used] or PALETTE
        return {"initial": {"color": free[(index - self.initial_form_count()) % len(free)]}}

    def clean(self):
        if any(self.errors):
            return
        rows = [form.cleaned_data for form in self.forms
                if form.cleaned_data.get("name") or form.cleaned_data.get("original")]
        kept = [row for row in rows if not row["delete"]]
        # stable: rows without a position keep their place after the numbered ones
        kept.sort(key=lambda row: row["position"] or len(self.forms) + 1)
        self.labels = validate_label_set(
            [{"name": row["name"], "key": row["key"], "color": row["color"],
              "description": row["description"]} for row in kept])
        self.renamed = {row["original"]: label["name"]
                        for row, label in zip(kept, self.labels, strict=True)
                        if row["original"] and row["original"] != label["name"]}


LabelFormSet = forms.formset_factory(LabelForm, formset=BaseLabelFormSet, extra=3,
                                     max_num=MAX_LABELS)


def label_rows(project: Project | None) -> list[dict]:
    """The initial rows of the label formset for a project (or the defaults of a new one)."""
    labels = project.label_set if project else Project().label_set
    return [{"original": label["name"] if project else "", "name": label["name"],
             "key": label["key"], "color": label["color"],
             "description": label.get("description", ""), "position": position}
            for position, label in enumerate(labels, start=1)]
