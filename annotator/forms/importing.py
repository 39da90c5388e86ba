"""The upload page's forms: the file, then which of its columns goes where."""

from django import forms

from annotator.models import Item
from annotator.services.importing import (
    FORMATS,
)

TEXT_COLUMNS = ("text", "review", "content", "body")  # preselected as the text column, in order


class UploadForm(forms.Form):
    file = forms.FileField(help_text="CSV, TSV, JSON (array of objects) or JSONL")
    fmt = forms.ChoiceField(
        label="Format",
        required=False,
        choices=[("", "from the extension")] + [(f, f) for f in FORMATS],
    )
    encoding = forms.CharField(
        required=False, help_text="empty: detected (UTF-8, GB18030 or Windows-1252)"
    )


class MappingForm(forms.Form):
    """Which column of the file goes where; every choice is one of the file's columns."""

    text_column = forms.ChoiceField(label="Text")
    label_column = forms.ChoiceField(
        label="Label", required=False, help_text="gold label (split gold) or pre-label"
    )
    id_column = forms.ChoiceField(label="External id", required=False)
    meta_columns = forms.MultipleChoiceField(
        label="Meta", required=False, help_text="kept in the item's meta (Ctrl or ⌘ for several)"
    )
    kind_column = forms.ChoiceField(label="Kind", required=False)
    turns_column = forms.ChoiceField(
        label="Dialogue turns", required=False, help_text="a JSON list of {speaker, text}"
    )
    split = forms.ChoiceField(choices=Item.Split.choices, initial=Item.Split.POOL)
    skip_invalid = forms.BooleanField(
        label="Skip invalid rows",
        required=False,
        help_text="list empty or too long texts as rejected instead of failing the import",
    )

    def __init__(self, *args, columns: list[str], **kwargs):
        super().__init__(*args, **kwargs)
        choices = [(column, column[:60]) for column in columns]
        by_name = {column.lower(): column for column in reversed(columns)}  # the first wins
        text = next((by_name[name] for name in TEXT_COLUMNS if name in by_name), "")
        for name, field in self.fields.items():
            if name.endswith("_column"):
                field.choices = [("", "none")] + choices
            elif name.endswith("_columns"):
                field.choices = choices
            else:
                continue
            field.error_messages["invalid_choice"] = "no column %(value)s in this file"
        self.fields["text_column"].choices = [("", "choose a column")] + choices
        self.fields["text_column"].initial = text
        self.fields["turns_column"].initial = by_name.get("turns", "")
