"""Streaming writers for report files: CSV and XLSX (openpyxl's write-only workbook).

Both take rows chunk by chunk. Text that a spreadsheet would read as a formula
(``=``, ``+``, ``-``, ``@``, tab, carriage return first) is prefixed with ``'``
(CSV/formula injection: user names and emails are user-controlled).
"""
from __future__ import annotations

import csv
from collections.abc import Iterable, Sequence
from datetime import date, datetime
from typing import Any

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value: Any) -> Any:
    """``value``, with text that starts like a formula made inert."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


class ReportWriter:
    """Writes a header, then rows in chunks (``write_rows``), then finishes the file (``close``)."""

    def write_row(self, row: Sequence[Any]) -> None:
        """Append one row."""
        raise NotImplementedError

    def write_rows(self, rows: Iterable[Sequence[Any]]) -> int:
        """Append rows; returns how many."""
        count = 0
        for row in rows:
            self.write_row(row)
            count += 1
        return count

    def close(self) -> None:
        """Finish the file."""
        raise NotImplementedError

    def abandon(self) -> None:
        """Release what the writer holds without finishing the file (the build failed)."""


def text_cell(value: Any) -> Any:
    """A CSV cell: ISO timestamps, ``yes``/``no`` for booleans, blank for None."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, date):
        return value.isoformat()
    return safe_cell(value)


class CsvWriter(ReportWriter):
    """UTF-8 CSV with a header row (Excel-friendly BOM)."""

    def __init__(self, path: str, columns: Sequence[str], title: str = ""):
        self.file = open(path, "w", newline="", encoding="utf-8-sig")
        self.csv = csv.writer(self.file)
        self.csv.writerow([safe_cell(c) for c in columns])

    def write_row(self, row: Sequence[Any]) -> None:
        """Append one row as text cells."""
        self.csv.writerow([text_cell(v) for v in row])

    def close(self) -> None:
        """Flush and close the file."""
        self.file.close()

    def abandon(self) -> None:
        """Close the file."""
        self.file.close()


class XlsxWriter(ReportWriter):
    """One worksheet, bold header, streamed with openpyxl's write-only mode."""

    def __init__(self, path: str, columns: Sequence[str], title: str = "Report"):
        from openpyxl import Workbook
        from openpyxl.cell import WriteOnlyCell
        from openpyxl.styles import Font

        self.path = path
        self.workbook = Workbook(write_only=True)
        self.sheet = self.workbook.create_sheet(title=(title or "Report")[:31])
        header = []
        for column in columns:
            cell = WriteOnlyCell(self.sheet, value=safe_cell(column))
            cell.font = Font(bold=True)
            header.append(cell)
        self.sheet.append(header)

    def write_row(self, row: Sequence[Any]) -> None:
        """Append one row (numbers, booleans and timestamps keep their types)."""
        self.sheet.append([safe_cell(v) for v in row])

    def close(self) -> None:
        """Write the workbook to its path."""
        self.workbook.save(self.path)


WRITERS = {"csv": CsvWriter, "xlsx": XlsxWriter}


def open_writer(fmt: str, path: str, columns: Sequence[str], title: str) -> ReportWriter:
    """A writer for ``fmt`` (``csv`` or ``xlsx``) at ``path``."""
    return WRITERS[fmt](path, columns, title)
