from django import template

from annotator.lib.guidelines import guidelines_html

register = template.Library()
register.filter("markdown", guidelines_html)
