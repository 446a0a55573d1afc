"""A campaign's spreadsheet (CSV or XLSX), read into recipients.

The first non-empty row is the header. The phone column is found by its header
(`phone`, `phone_number`, `number`, `mobile`, `msisdn`, `tel`, any case, spaces
or dashes for underscores); every other column whose header names one of the
workflow's variables fills it. A variable that no column fills is named
(`Sheet.missing`): such a campaign cannot be sent. Each row keeps its line
number in the file (the header is line 1 of a sheet that starts with it), so a
refusal names the line and the reason; a number seen before is a duplicate
(called once, at its first line).

Pure parsing: no Slack, no provider, no store.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass, field

from bot.input import phones
from bot.input.phones import NumberType
from bot.input.recipients import PHONE_COLUMNS
from bot.text import clip, quoted, without_invisibles

MAX_BYTES = 20 * 1024 * 1024  # a larger upload is refused before it is read
MAX_ROWS = 50_000  # rows a campaign may have
CELL = 1000  # characters of one cell kept; a longer value is refused
_DELIMITERS = (",", ";", "\t")


class SheetError(ValueError):
    """The file as a whole cannot be used; the message says why and what would be right."""


@dataclass(frozen=True)
class SheetRow:
    """One recipient: where it is in the file, the number (E.164), its variables."""

    line: int
    phone: str
    variables: dict[str, str]


@dataclass(frozen=True)
class Refusal:
    """A row that is not called: its line, the value at fault (as written), and why."""

    line: int
    value: str
    reason: str


@dataclass(frozen=True)
class Duplicate:
    """A row whose number an earlier row has: called once, at `first_line`."""

    line: int
    phone: str
    first_line: int


@dataclass
class Sheet:
    """A spreadsheet, read: what will be called, what will not, and why."""

    phone_column: str
    columns: dict[str, str]  # variable -> the header of the column that fills it
    missing: list[str]  # the workflow's variables that no column fills
    ignored: list[str]  # headers that fill no variable (kept in the results CSV)
    rows: list[SheetRow] = field(default_factory=list)
    refused: list[Refusal] = field(default_factory=list)
    duplicates: list[Duplicate] = field(default_factory=list)


def read_sheet(
    content: bytes,
    filename: str,
    variables: Sequence[str],
    *,
    default_region: str | None = None,
    allowed_types: Collection[NumberType] = frozenset(),
) -> Sheet:
    """Read `content` (CSV, or XLSX when `filename` ends in .xlsx) for a workflow that
    needs `variables`. Raises SheetError when the file cannot be used at all."""
    if len(content) > MAX_BYTES:
        raise SheetError(
            f"the file {quoted(filename)} is {len(content) / 1e6:.1f} MB; "
            f"a campaign's file may be at most {MAX_BYTES // (1024 * 1024)} MB"
        )
    name = filename.lower()
    if name.endswith((".xlsx", ".xlsm")):
        table = _xlsx_rows(content, filename)
    elif name.endswith((".csv", ".txt", ".tsv")) or not name.rpartition(".")[1]:
        table = _csv_rows(content, filename)
    else:
        raise SheetError(
            f"the file {quoted(filename)} is neither CSV nor XLSX; "
            "upload a .csv or .xlsx file with a header row"
        )
    return _read_table(table, filename, variables, default_region, allowed_types)


def column_key(name: str) -> str:
    """A header as compared: trimmed, lower case, spaces and dashes as underscores."""
    return re.sub(r"[\s\-]+", "_", without_invisibles(name).strip().lower())


# ---------------------------------------------------------------- reading the file


def _csv_rows(content: bytes, filename: str) -> Iterator[tuple[int, list[str]]]:
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError:
        try:
            text = content.decode("cp1252")  # Excel's "CSV" on Windows
        except UnicodeDecodeError as exc:
            raise SheetError(
                f"the file {quoted(filename)} is not text in UTF-8; save it as "
                "CSV UTF-8 (or upload the .xlsx)"
            ) from exc
    first = next((line for line in text.splitlines() if line.strip()), "")
    delimiter = max(_DELIMITERS, key=first.count) if first else ","
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    read = 0
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise SheetError(
                f"line {reader.line_num} of {quoted(filename)} cannot be read ({exc}); "
                "check its quotes"
            ) from exc
        line, read = read + 1, reader.line_num
        yield line, row


def _xlsx_rows(content: bytes, filename: str) -> Iterator[tuple[int, list[str]]]:
    import openpyxl  # only a campaign with an XLSX file pays for importing it

    try:
        book = openpyxl.load_workbook(io.BytesIO(content), read_only=True, data_only=True)
    except Exception as exc:  # zipfile, XML and openpyxl's own errors
        raise SheetError(
            f"the file {quoted(filename)} cannot be read as XLSX ({type(exc).__name__}); "
            "save it again from your spreadsheet app as .xlsx, or as CSV"
        ) from exc
    try:
        sheet = book.worksheets[0]
        for line, values in enumerate(sheet.iter_rows(values_only=True), start=1):
            yield line, [_cell_text(v) for v in values]
    finally:
        book.close()


class NumberCell(str):
    """A cell's text where the cell was typed as a number: Excel keeps no `+` (nor a
    leading 0) in it, so a refusal of it says so and how to mend it."""


def _cell_text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float) and value.is_integer():
        return NumberCell(int(value))  # a number typed as a number: 2348031234561.0
    if isinstance(value, int | float):
        return NumberCell(value)
    return str(value)


# ---------------------------------------------------------------- rows


def _read_table(
    table: Iterator[tuple[int, list[str]]],
    filename: str,
    variables: Sequence[str],
    default_region: str | None,
    allowed_types: Collection[NumberType],
) -> Sheet:
    header_line, header = next(
        ((line, row) for line, row in table if any(c.strip() for c in row)), (0, [])
    )
    if not header:
        raise SheetError(f"the file {quoted(filename)} is empty; it needs a header row and rows")
    keys = [column_key(c) for c in header]
    phone_at = next((i for i, key in enumerate(keys) if key in PHONE_COLUMNS), None)
    if phone_at is None:
        shown = ", ".join(quoted(c, 30) for c in header[:8] if c.strip()) or "none"
        raise SheetError(
            f"no phone column in {quoted(filename)}: line {header_line} has {shown}; "
            "name the column of numbers phone (or phone_number, number, mobile, msisdn, tel)"
        )
    wanted = {column_key(v): v for v in variables}
    columns: dict[str, int] = {}
    ignored: list[str] = []
    for i, key in enumerate(keys):
        if i == phone_at or not key:
            continue
        variable = wanted.get(key)
        if variable is not None and variable not in columns:
            columns[variable] = i
        else:
            ignored.append(header[i].strip())
    sheet = Sheet(
        phone_column=header[phone_at].strip(),
        columns={v: header[i].strip() for v, i in columns.items()},
        missing=[v for v in variables if v not in columns],
        ignored=ignored,
    )
    first_seen: dict[str, int] = {}
    count = 0
    for line, row in table:
        if not any(cell.strip() for cell in row):
            continue
        count += 1
        if count > MAX_ROWS:
            raise SheetError(
                f"the file {quoted(filename)} has more than {MAX_ROWS:,} rows; "
                f"split it into campaigns of at most {MAX_ROWS:,}"
            )
        found = _read_row(line, row, phone_at, columns, header, default_region, allowed_types)
        if isinstance(found, Refusal):
            sheet.refused.append(found)
        elif found.phone in first_seen:
            sheet.duplicates.append(Duplicate(line, found.phone, first_seen[found.phone]))
        else:
            first_seen[found.phone] = line
            sheet.rows.append(found)
    return sheet


def _read_row(
    line: int,
    row: list[str],
    phone_at: int,
    columns: dict[str, int],
    header: list[str],
    default_region: str | None,
    allowed_types: Collection[NumberType],
) -> SheetRow | Refusal:
    raw = row[phone_at].strip() if phone_at < len(row) else ""
    if not raw:
        return Refusal(line, "", f"the {header[phone_at].strip()!r} column is empty")
    try:
        phone = phones.to_e164(raw, default_region, allowed_types)
    except phones.PhoneNumberError as exc:
        cell = row[phone_at]
        why = _without_plus(raw, isinstance(cell, NumberCell), default_region, allowed_types)
        return Refusal(line, clip(raw, 40), why or str(exc))
    values: dict[str, str] = {}
    for variable, i in columns.items():
        value = without_invisibles(row[i]).strip() if i < len(row) else ""
        if not value:
            return Refusal(
                line,
                "",
                f"the {header[i].strip()!r} column is empty, and the message needs [{variable}]",
            )
        if len(value) > CELL:
            return Refusal(
                line,
                clip(value, 40),
                f"the {header[i].strip()!r} value is {len(value):,} characters; at most {CELL:,}",
            )
        values[variable] = value
    return SheetRow(line, phone, values)


def _without_plus(
    raw: str, number_cell: bool, region: str | None, allowed: Collection[NumberType]
) -> str | None:
    """Why a number written as digits alone was refused, and what to do, when its `+`
    may be what is missing: a number cell (Excel drops the `+`), or digits alone in a
    CSV. Still refused (a guessed country could call a stranger), but the reason says
    which number the digits would be with a `+` (masked) when that is a valid one.
    None: the usual reason says it."""
    digits = raw.strip()
    if not digits.isdigit() or len(digits) <= 6:
        return None  # not digits alone, or a short one (an emergency number…): as said
    try:
        meant = phones.to_e164(f"+{digits}", None, allowed)
    except phones.PhoneNumberError:
        meant = None
    if region:  # read as a number of the default region, and not valid there
        if meant is None:
            return None
        return (
            f"phone {digits} has no +, so it was read as a number of {region.upper()}, and "
            f"it is not one; if its + was dropped (Excel drops it from a number cell), "
            f"write {meant} ({_which(meant)}) and format the column as text"
        )
    if number_cell:
        head = f"phone {digits} is a number cell without its + (Excel drops it)"
        if meant is None:
            return (
                f"{head}, so it has no country code, and +{digits} is not a valid number "
                f"either; format the column as text and write the number with + and its "
                f"country code ({phones.E164_HINT})"
            )
        return f"{head}; format the column as text or write {meant} ({_which(meant)})"
    if meant is None:
        return None
    return (
        f"phone {digits} has no + and so no country code (a spreadsheet drops the + of a "
        f"number cell); write {meant} ({_which(meant)}), or format the column as text "
        "before saving the CSV"
    )


def _which(e164: str) -> str:
    """`+234•••••5678, a number in Nigeria`: which number a + makes of the digits."""
    import phonenumbers
    from phonenumbers import geocoder

    number = phonenumbers.parse(e164, None)
    country = geocoder.country_name_for_number(number, "en") or (
        phonenumbers.region_code_for_number(number) or f"+{number.country_code}"
    )
    return f"that is {phones.mask(e164)}, a number in {country}"
