"""The "generate a report" form: which report, its parameters, the file format."""
from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from flask_wtf import FlaskForm
from wtforms import BooleanField, RadioField, SelectField
from wtforms.fields import DateField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import InputRequired, Optional

from app.reports.catalog import JOB_ACTIVITY, MAX_DAYS, ReportKind
from app.reports.storage import FORMATS

DEFAULT_DAYS = 7


def today() -> date:
    """Today in UTC (reports count UTC days)."""
    from tasks.ledger import utcnow

    return utcnow().date()


class ReportForm(FlaskForm):
    """Report kind (only those the user may run), date range, options and format."""

    kind = RadioField("Report", validators=[InputRequired(message="Choose a report.")])
    start = DateField("From (UTC)", validators=[Optional()])
    end = DateField("To (UTC, inclusive)", validators=[Optional()])
    include_inactive = BooleanField("Include deactivated users")
    format = SelectField("Format", choices=[SelectChoice(key, label) for key, (label, _) in FORMATS.items()],
                         default="csv")

    def __init__(self, kinds: list[ReportKind], *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.kinds = {kind.key: kind for kind in kinds}
        self.kind.choices = [SelectChoice(kind.key, kind.title) for kind in kinds]
        if not self.is_submitted():
            self.kind.data = self.kind.data or (kinds[0].key if kinds else None)
            self.end.data = self.end.data or today()
            self.start.data = self.start.data or today() - timedelta(days=DEFAULT_DAYS - 1)

    def validate(self, extra_validators=None) -> bool:
        """Field checks, then the date range of a job activity report."""
        if not super().validate(extra_validators):
            return False
        problem = self.range_problem() if self.kind.data == JOB_ACTIVITY.key else None
        if problem:
            self.end.errors = [*self.end.errors, problem]
        return problem is None

    def range_problem(self) -> str | None:
        """What is wrong with the date range (both days, in order, at most ``MAX_DAYS``), or None."""
        if not self.start.data or not self.end.data:
            return "Choose the first and the last day."
        if self.end.data < self.start.data:
            return "The last day is before the first day."
        if (self.end.data - self.start.data).days + 1 > MAX_DAYS:
            return f"Choose at most {MAX_DAYS} days."
        return None

    def chosen_kind(self) -> ReportKind:
        """The validated report kind."""
        return self.kinds[self.kind.data]

    def parameters(self) -> dict:
        """The chosen report's parameters, JSON-ready."""
        if self.kind.data == JOB_ACTIVITY.key:
            return {"start": self.start.data.isoformat(), "end": self.end.data.isoformat()}
        return {"include_inactive": bool(self.include_inactive.data)}
