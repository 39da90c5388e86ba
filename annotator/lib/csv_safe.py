"""CSV cells a spreadsheet will not run, and CSV lines streamed one by one.

A cell that a spreadsheet would run as a formula (starting with = + - @, a tab or a carriage
return, after any apostrophes) gets one more leading apostrophe (OWASP's advice against CSV
injection); `restore_formula` takes exactly one off again, so export -> import gives back the
same texts. Used by the export (services.exporting) and the importer (services.importing),
which reads such files and writes its rejected rows back as CSV.
"""

import re

FORMULA_START = re.compile(r"'*[=+\-@\t\r]")  # a cell a spreadsheet would evaluate


def neutralize_formula(cell):
    """"=HYPERLINK(...)" -> "'=HYPERLINK(...)": a spreadsheet shows it as text."""
    return "'" + cell if isinstance(cell, str) and FORMULA_START.match(cell) else cell


def restore_formula(cell: str) -> str:
    """The inverse, for imports: one apostrophe off a neutralized cell."""
    return cell[1:] if cell.startswith("'") and FORMULA_START.match(cell, 1) else cell


class Echo:
    """A file that hands back what is written: `csv.writer(Echo()).writerow(...)` returns the
    formatted line, so a CSV can be streamed a line at a time."""

    def write(self, value: str) -> str:
        return value
