"""The people page's forms: add a member, invite someone, change a role."""

from django import forms

from annotator.models import Membership


class AddMemberForm(forms.Form):
    who = forms.CharField(label="Username or e-mail", max_length=254)
    role = forms.ChoiceField(choices=Membership.Role.choices, initial=Membership.Role.LABELER)


class InviteForm(forms.Form):
    username = forms.CharField(max_length=150)
    email = forms.EmailField(label="E-mail (optional)", required=False)
    role = forms.ChoiceField(choices=Membership.Role.choices, initial=Membership.Role.LABELER)


class RoleForm(forms.Form):
    role = forms.ChoiceField(choices=Membership.Role.choices)
