"""The Find page's form: what to look for (words, meaning, an item's likes, a group)."""

from django import forms

from annotator.selectors.search import SORTS

MODES = [("words", "Text contains"), ("meaning", "Similar meaning")]


class FindForm(forms.Form):
    q = forms.CharField(label="Find", required=False, max_length=10_000, strip=False)
    mode = forms.ChoiceField(choices=MODES, required=False, initial="words")
    label = forms.CharField(required=False, max_length=100)
    sort = forms.ChoiceField(choices=[(s, s) for s in SORTS], required=False, initial="relevance")
    like = forms.IntegerField(required=False, min_value=1, widget=forms.HiddenInput)
    group = forms.IntegerField(required=False, min_value=1, widget=forms.HiddenInput)
