"""Turn what a user types into recipients: pasted lines, a pasted CSV, or `/robocall call …`.

Only the structure is read here. Numbers are checked later by
`bot.core.orders`, which names recipients by position; `RecipientLine.line`
maps that position back to the line the user typed. Every problem is collected,
each naming the line, the value and what would be right, so one round of
corrections is enough.
"""

from __future__ import annotations

import csv
import re
import shlex
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field

from bot.input import templates
from bot.text import quoted, without_invisibles

MAX_RECIPIENTS = 10_000
MAX_TEXT_CHARS = 400_000

# Header names (lower-cased, spaces and dashes read as "_") that mark a CSV's phone column.
PHONE_COLUMNS = frozenset({"phone", "phone_number", "number", "msisdn", "mobile", "tel"})

EXAMPLE_LINE = "+2348076960623 name=Ada"
EXAMPLE_COMMAND = "/robocall call reminder +2348076960623 name=Ada"
EXAMPLE_VOICE = "voice=igbo/female"
VOICE = "voice"
AT = "at"  # `at=<when>`: schedule the call (read by bot.input.schedules)
EXAMPLE_AT = "at=2026-12-02T09:00+01:00"
# `at=tomorrow 09:00`, `at=2026-12-02 09:00`: the clock after a day word is part of it.
_DAY_WORD = re.compile(r"(?:today|tomorrow|\d{4}-\d{2}-\d{2})", re.IGNORECASE)
_CLOCK_WORD = re.compile(r"\d{1,2}:\d{2}")

# Slack clients turn typed quotes into typographic ones; shlex only knows straight quotes.
# (Invisible characters — byte-order marks from spreadsheet exports, zero-width
# spaces and direction marks copied from web pages — are dropped by `_normalise`.)
_NORMALISE = str.maketrans(
    {
        "\u201c": '"',  # left double quotation mark
        "\u201d": '"',  # right double quotation mark
        "\u2018": "'",  # left single quotation mark
        "\u2019": "'",  # right single quotation mark
    }
)

# Numbers copied from web pages or typed on phones often hold non-breaking or other
# Unicode spaces ("+234\u00a0807…"); they separate words just like a plain space.
_WHITESPACE = "".join(chr(code) for code in range(0x3001) if chr(code).isspace())

# What may follow a number's first word and still be part of it: "807", "0623", "(0)".
_CONTINUATION = re.compile(r"[\d\-.()]+")
_NUMBERISH = re.compile(r"\+?[\d\-.()]*\d[\d\-.()]*")

# An extension typed after a number in `/robocall call` ("+234… ext. 5", "x5", "#5"):
# kept with its number, so that validation refuses it as an extension (only the main
# line would ring) instead of reading it as another recipient. A bare marker ("ext.")
# takes the digits after it; a lone "#" or "x" not followed by digits is no extension.
_EXTENSION = re.compile(r"(?:#|x|ext|extn|extension)[.:]?(\d*)#?", re.IGNORECASE)
_EXTENSION_DIGITS = re.compile(r"\d+#?")

# A Slack mention as Slack sends it in a command's text: <@U123ABC> or <@U123ABC|ada>.
_SLACK_MENTION = re.compile(r"<@([UW][A-Z0-9]+)(?:\|[^<>]*)?>")

_DELIMITERS = (",", ";", "\t")
_DELIMITER_NAMES = {",": "comma", ";": "semicolon", "\t": "tab"}


@dataclass(frozen=True)
class Recipient:
    """One person to call, as the user gave it: the number as typed and template values."""

    phone: str
    variables: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class LineProblem:
    """One thing wrong with the recipients as typed; `line` is None for the input as a whole.

    `label` is how `line` reads in messages: "line" for pasted text, "recipient"
    for the positions of a `/robocall call` command.
    """

    line: int | None
    value: str
    message: str
    label: str = "line"

    def __str__(self) -> str:
        if self.line is None:
            return self.message
        return f"{self.label} {self.line}: {self.message}"


# How many problems the exception's own message spells out; `problems` keeps them all.
# A pasted list of 10,000 bad lines would otherwise make a message of megabytes.
MESSAGE_PROBLEMS = 20


class RecipientsError(ValueError):
    """Nothing was parsed into recipients; `problems` lists every reason."""

    def __init__(self, problems: Sequence[LineProblem]) -> None:
        self.problems = list(problems)
        shown = "; ".join(str(p) for p in self.problems[:MESSAGE_PROBLEMS])
        more = len(self.problems) - MESSAGE_PROBLEMS
        super().__init__(f"{shown}; and {more:,} more" if more > 0 else shown)


@dataclass(frozen=True)
class RecipientLine:
    """One recipient as typed: where it was (1-based), the number as typed, its template values.

    `user` is the Slack user id when the recipient was given as a mention (`<@U123>`);
    `phone` is then the mention as typed until the front end puts the number from the
    user's Slack profile there (`with_phone`)."""

    line: int
    phone: str
    variables: dict[str, str] = field(default_factory=dict)
    user: str | None = None

    def with_phone(self, phone: str) -> RecipientLine:
        return RecipientLine(self.line, phone, dict(self.variables), self.user)

    def to_recipient(self) -> Recipient:
        """The `Recipient` that `bot.core.orders.check_recipients` takes."""
        return Recipient(self.phone, dict(self.variables))


@dataclass(frozen=True)
class CallCommand:
    """`/robocall call <workflow> <recipients…> [name=value …] [voice=<accent>/<gender>]`, read."""

    workflow: str
    recipients: list[RecipientLine]
    shared_variables: dict[str, str]
    voice: str | None
    at: str | None = None  # `at=` as typed (`tomorrow 09:00`); bot.input.schedules reads it


def parse_recipient_lines(
    text: str, *, max_recipients: int = MAX_RECIPIENTS
) -> list[RecipientLine]:
    """Read pasted recipients, one per line or as CSV with a header, or raise RecipientsError.

    Curly quotes (“ ” and their single forms) are read as straight quotes first.
    `line` is the line number in `text` as pasted (lines end at any line break
    `str.splitlines` knows).

    **Free form.** Blank lines and lines starting with `#` are skipped. Every
    other line is a number, then optional `name=value` pairs; a value may be
    quoted to hold spaces (`name="Ada Obi"`, split as a shell would). A number
    may be typed with spaces: the words right after its first word that hold only
    1 to 4 digits (and `- . ( )`) are part of it, so `+234 807 696 0623 name=Ada`
    is one number and one value. Names are template variable names (letters,
    digits and `_`, not starting with a digit).

    **CSV.** When the first line that is not blank or a `#` comment holds no
    `=` and, split on a comma, semicolon or tab (tried in that order), has a
    column named phone, phone_number, number, msisdn, mobile or tel (any case,
    surrounding spaces ignored, "Phone Number" read as phone_number), the text is
    CSV with that header: the first such column holds the number, every other
    column is a variable named by its (stripped) header. Cells are stripped; an
    empty cell is kept as "" (validation reports it as missing); a short row is
    padded with ""; blank rows are skipped; `#` lines after the header are data.
    Empty cells beyond the header's columns are ignored. A cell may not run over
    several lines: that is nearly always a quote left open.
    """
    _check_size(text)
    lines = _normalise(text).splitlines()
    header = _find_csv_header(lines)
    parsed = _parse_free_form(lines) if header is None else _parse_csv(lines, header)
    if parsed.entries == 0:
        parsed.problems.append(LineProblem(None, "", _no_recipients_message(header)))
    if parsed.entries > max_recipients:
        parsed.problems.append(
            LineProblem(
                None,
                str(parsed.entries),
                f"{parsed.entries:,} recipients; at most {max_recipients:,} per request",
            )
        )
    if parsed.problems:
        raise RecipientsError(parsed.problems)
    return parsed.recipients


def parse_call_command(text: str) -> CallCommand:
    """Read the text after `/robocall call`, or raise RecipientsError.

    The text is split as a shell would (after reading curly quotes as straight
    ones). The first word is the workflow, a name (quoted if it has spaces) or an
    id. Then, in any order: `voice=<accent>/<gender>` (at most once);
    `name=value` pairs, which fill the template for every recipient (they are in
    `shared_variables` and in each recipient's `variables`); and numbers. A word
    may hold several numbers separated by commas, and a number may be typed with
    spaces under the same rule as pasted lines (`+234 807 696 0623` is one
    number); a comma or a `name=value` ends a number. An extension typed after a
    number (`ext. 5`, `x5`, `#5`) stays with it, for validation to refuse it
    (pasted lines refuse such words as not name=value). A recipient's `line` is its
    1-based position among the recipients. A Slack mention (`<@U123>`,
    `<@U123|ada>`) is a recipient with `user` set (its number is read from the
    user's Slack profile by the front end); a bare `@ada`, which Slack did not turn
    into a mention, is reported.
    """
    _check_size(text)
    try:
        words = _split_words(_normalise(text))
    except ValueError as exc:
        problem = LineProblem(None, text.strip(), _quote_message("the command", exc))
        raise RecipientsError([problem]) from None
    workflow, rest, problems = _take_workflow(words)
    at, rest, at_problems = _take_at(rest)
    problems += at_problems
    voice, shared, setting_problems = _read_settings(rest)
    problems += setting_problems
    recipients: list[RecipientLine] = []
    numbers = _gather_numbers(rest)
    for position, number in enumerate(numbers, start=1):
        if user := slack_user(number):
            recipients.append(RecipientLine(position, number, dict(shared), user))
        elif _is_mention(number):
            problems.append(LineProblem(position, number, _mention_message(number), "recipient"))
        else:
            recipients.append(RecipientLine(position, number, dict(shared)))
    if not numbers:
        problems.append(
            LineProblem(
                None,
                "",
                "no recipients: add one or more numbers after the workflow, "
                f"e.g. {EXAMPLE_COMMAND}",
            )
        )
    elif len(numbers) > MAX_RECIPIENTS:
        problems.append(
            LineProblem(
                None,
                str(len(numbers)),
                f"{len(numbers):,} recipients; at most {MAX_RECIPIENTS:,} per request",
            )
        )
    if problems:
        raise RecipientsError(problems)
    return CallCommand(workflow, recipients, shared, voice, at)


# --- what both forms share ---------------------------------------------------------


@dataclass
class _Parsed:
    recipients: list[RecipientLine] = field(default_factory=list)
    problems: list[LineProblem] = field(default_factory=list)
    # Recipients given, good or bad: what the limit counts and "no recipients" checks.
    entries: int = 0


def _normalise(text: str) -> str:
    return without_invisibles(text.translate(_NORMALISE))


def _check_size(text: str) -> None:
    """Refuse text too long to read at once (splitting it costs time on the event loop)."""
    if len(text) > MAX_TEXT_CHARS:
        raise RecipientsError(
            [
                LineProblem(
                    None,
                    f"{len(text):,} characters",
                    f"the text is {len(text):,} characters; at most {MAX_TEXT_CHARS:,} are read at "
                    f"once (about {MAX_RECIPIENTS:,} recipients): split it into several requests",
                )
            ]
        )


def _split_words(text: str) -> list[str]:
    """Split as a POSIX shell would, on any Unicode space; ValueError on an unclosed quote."""
    lexer = shlex.shlex(text, posix=True)
    lexer.whitespace = _WHITESPACE
    lexer.whitespace_split = True
    lexer.commenters = ""
    return list(lexer)


def _is_continuation(word: str) -> bool:
    """True for a word that continues the number before it: digits in runs of 1-4, maybe
    joined by - . ( ) — so `+1 (415) 555-0123` and `+234 807-696-0623` read as one number.
    Two `+`-less numbers typed without a comma may then run together; validation refuses
    the result, so this can never dial a wrong but valid number."""
    runs = re.findall(r"\d+", word)
    return bool(_CONTINUATION.fullmatch(word)) and bool(runs) and all(len(r) <= 4 for r in runs)


def slack_user(word: str) -> str | None:
    """The user id of a Slack mention (`<@U123>`, `<@U123|ada>`), or None."""
    found = _SLACK_MENTION.fullmatch(word.strip())
    return found.group(1) if found else None


def _is_mention(word: str) -> bool:
    # Slack sends a mention as <@U123|ada> (or as plain @ada when it does not escape them).
    return word.startswith(("<@", "@"))


def _is_blank_or_comment(line: str) -> bool:
    stripped = line.strip()
    return not stripped or stripped.startswith("#")


def _pair_problem(word: str, name: str, value: str) -> str | None:
    """Why `name=value` (the parts of `word`) cannot fill a template variable, or None."""
    if not name:
        return f"{quoted(word)} has no name before '='; write e.g. name={_example(value or 'Ada')}"
    if not templates.VARIABLE.fullmatch(f"[{name}]"):
        return (
            f"{quoted(name)} is not a variable name; use letters, digits and _ (not starting with "
            f"a digit), e.g. {_suggest_name(name)}={_example(value or 'Ada')}"
        )
    return None


def _duplicate_message(name: str, first: str, second: str) -> str:
    return f"{quoted(name)} is given twice ({quoted(first)}, then {quoted(second)}); keep one"


def _suggest_name(name: str) -> str:
    suggestion = re.sub(r"[^A-Za-z0-9_]+", "_", name).strip("_")
    if templates.VARIABLE.fullmatch(f"[{suggestion}]"):
        return suggestion
    return f"_{suggestion}" if suggestion[:1].isdigit() else "name"


def _mention_message(word: str) -> str:
    return (
        f"{quoted(word)} is not a Slack mention; pick the person from Slack's @ list "
        "(so that Slack sends it as a mention), or give a number instead, e.g. +2348076960623"
    )


def _quote_message(subject: str, exc: ValueError) -> str:
    """Why shlex could not split `subject` (a quoted line, or "the command")."""
    if "escaped" in str(exc):  # shlex: "No escaped character", a backslash at the very end
        return f"{subject} ends with a lone backslash; remove it"
    return (
        f"{subject} has a quote that is never closed; close it, e.g. "
        """name="Ada Obi" (put a value with an apostrophe in double quotes: name="O'Brien")"""
    )


def _example(value: str) -> str:
    shown = value if len(value) <= 30 else value[:29] + "…"
    return f'"{shown}"' if any(ch.isspace() for ch in shown) else shown


# --- free form: one recipient per line -----------------------------------------------


def _parse_free_form(lines: list[str]) -> _Parsed:
    parsed = _Parsed()
    for line, text in enumerate(lines, start=1):
        if _is_blank_or_comment(text):
            continue
        parsed.entries += 1
        found = _parse_line(line, text)
        if isinstance(found, RecipientLine):
            parsed.recipients.append(found)
        else:
            parsed.problems.extend(found)
    return parsed


def _parse_line(line: int, text: str) -> RecipientLine | list[LineProblem]:
    try:
        words = _split_words(text)
    except ValueError as exc:
        return [LineProblem(line, text.strip(), _quote_message(quoted(text.strip()), exc))]
    phone, rest = _take_number(words)
    problems: list[LineProblem] = []
    if not phone:
        problems.append(
            LineProblem(
                line,
                text.strip(),
                f"{quoted(text.strip())} does not start with a number; "
                f"start the line with it, e.g. {EXAMPLE_LINE}",
            )
        )
    elif not slack_user(phone) and _is_mention(phone):
        problems.append(LineProblem(line, phone, _mention_message(phone)))
    variables, pair_problems = _read_pairs(line, rest)
    problems += pair_problems
    return problems or RecipientLine(line, phone, variables, slack_user(phone))


def _take_number(words: list[str]) -> tuple[str, list[str]]:
    """Split a line's words into the number (joined with spaces) and what follows it."""
    if not words:
        return "", []
    if not words[0].strip():  # a quoted empty word ("") holds no number
        return "", words[1:]
    if "=" in words[0]:
        return "", words
    end = 1
    while end < len(words) and not _is_mention(words[0]) and _is_continuation(words[end]):
        end += 1
    return " ".join(words[:end]), words[end:]


def _read_pairs(line: int, words: list[str]) -> tuple[dict[str, str], list[LineProblem]]:
    variables: dict[str, str] = {}
    problems: list[LineProblem] = []
    for word in words:
        if "=" not in word:
            problems.append(LineProblem(line, word, _not_a_pair_message(word)))
            continue
        name, value = word.split("=", 1)
        message = _pair_problem(word, name, value)
        if message is None and name in variables:
            message = _duplicate_message(name, variables[name], value)
        if message is None:
            variables[name] = value
        else:
            problems.append(LineProblem(line, word, message))
    return variables, problems


def _not_a_pair_message(word: str) -> str:
    if _NUMBERISH.fullmatch(word):
        return (
            f"{quoted(word)} is not name=value and looks like a number; give one number per line, "
            f"written without spaces or in groups of at most 4 digits, e.g. {EXAMPLE_LINE}"
        )
    if word.startswith("#"):
        return (
            f"{quoted(word)} is not name=value; a comment needs a line of its own, starting with #"
        )
    return f"{quoted(word)} is not name=value; write e.g. name={_example(word)}"


# --- CSV with a header row -----------------------------------------------------------


@dataclass(frozen=True)
class _Header:
    index: int  # 0-based index of the header's line in the text
    delimiter: str
    columns: list[str]
    phone_column: int

    @property
    def line(self) -> int:
        return self.index + 1


def _find_csv_header(lines: list[str]) -> _Header | None:
    for index, line in enumerate(lines):
        if not _is_blank_or_comment(line):
            return _read_header(index, line)
    return None


def _read_header(index: int, line: str) -> _Header | None:
    # A free-form line gives its values as name=value; with this rule a value such
    # as note=call,mobile,later cannot pass for a header with a "mobile" column.
    if "=" in line:
        return None
    for delimiter in _DELIMITERS:
        columns = [cell.strip() for cell in _split_cells(line, delimiter)]
        for position, name in enumerate(columns):
            if _column_key(name) in PHONE_COLUMNS:
                return _Header(index, delimiter, columns, position)
    return None


def _split_cells(line: str, delimiter: str) -> list[str]:
    try:
        return next(csv.reader([line], delimiter=delimiter, skipinitialspace=True), [])
    except csv.Error:
        return []


def _column_key(name: str) -> str:
    return re.sub(r"[\s\-]+", "_", name.strip().lower())


def _parse_csv(lines: list[str], header: _Header) -> _Parsed:
    parsed = _Parsed(problems=_header_problems(header))
    for line, last_line, row in _csv_rows(lines, header):
        if isinstance(row, csv.Error):
            parsed.entries += 1
            parsed.problems.append(
                LineProblem(line, "", f"this row cannot be read ({row}); check its quotes")
            )
            continue
        if not any(cell.strip() for cell in row):
            continue
        parsed.entries += 1
        found = _read_row(header, line, last_line, row)
        if isinstance(found, RecipientLine):
            parsed.recipients.append(found)
        else:
            parsed.problems.extend(found)
    return parsed


def _csv_rows(
    lines: list[str], header: _Header
) -> Iterator[tuple[int, int, list[str] | csv.Error]]:
    """Each row under the header with its first and last line number in the text."""
    # csv counts the lines it reads, so a row keeps its place in the text even when a
    # quoted cell spans lines; the line ends are put back for the same reason.
    reader = csv.reader(
        (line + "\n" for line in lines[header.index :]),
        delimiter=header.delimiter,
        skipinitialspace=True,
    )
    read = 0
    while True:
        try:
            row: list[str] | csv.Error = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            if reader.line_num == read:  # nothing consumed: the reader cannot go on
                return
            row = exc
        first, read = read + 1, reader.line_num
        if first > 1:  # line 1 of what the reader sees is the header
            yield header.index + first, header.index + read, row


def _header_problems(header: _Header) -> list[LineProblem]:
    problems: list[LineProblem] = []
    seen: set[str] = set()
    for name in header.columns:
        if name and name in seen:
            problems.append(
                LineProblem(
                    header.line,
                    name,
                    f"column {quoted(name)} appears twice in the header; rename or remove one",
                )
            )
        seen.add(name)
    return problems


def _read_row(
    header: _Header, line: int, last_line: int, row: list[str]
) -> RecipientLine | list[LineProblem]:
    broken = next((cell for cell in row if "\n" in cell or "\r" in cell), None)
    if broken is not None:
        return [LineProblem(line, broken, _unclosed_cell_message(broken, line, last_line))]
    problems = _extra_cell_problems(header, line, row)
    cells = [cell.strip() for cell in row] + [""] * (len(header.columns) - len(row))
    variables: dict[str, str] = {}
    for position, name in enumerate(header.columns):
        cell = cells[position]
        if position == header.phone_column or name in variables:
            continue
        if name:
            variables[name] = cell
        elif cell:
            problems.append(
                LineProblem(
                    line,
                    cell,
                    f"{quoted(cell)} is in column {position + 1}, which has no name on line "
                    f"{header.line}; name the column or remove the value",
                )
            )
    phone = cells[header.phone_column]
    if not phone:
        column = header.columns[header.phone_column]
        problems.append(
            LineProblem(
                line,
                "",
                f"the {quoted(column)} cell is empty; give a number, e.g. +2348076960623, "
                "or delete the row",
            )
        )
    elif not slack_user(phone) and _is_mention(phone):
        problems.append(LineProblem(line, phone, _mention_message(phone)))
    return problems or RecipientLine(line, phone, variables, slack_user(phone))


def _extra_cell_problems(header: _Header, line: int, row: list[str]) -> list[LineProblem]:
    # Spreadsheets export trailing empty cells; only a value with no column is lost.
    extra = [cell.strip() for cell in row[len(header.columns) :] if cell.strip()]
    if not extra:
        return []
    delimiter = header.delimiter
    example = f', e.g. "Obi{delimiter} Ada"' if delimiter != "\t" else ""
    return [
        LineProblem(
            line,
            extra[0],
            f"{len(row)} cells but the header on line {header.line} has {len(header.columns)} "
            f"columns, so {quoted(extra[0])} has no column; put quotes around a value that holds "
            f"a {_DELIMITER_NAMES[delimiter]}{example}",
        )
    ]


def _unclosed_cell_message(cell: str, line: int, last_line: int) -> str:
    start = cell.splitlines()[0].strip() if cell.strip() else ""
    which = f"the quote before {quoted(start)}" if start else "a quote"
    runs_on = f" (the row runs on to line {last_line})" if last_line > line else ""
    return f'{which} is never closed on line {line}{runs_on}; close it, e.g. "Obi, Ada"'


def _no_recipients_message(header: _Header | None) -> str:
    if header is None:
        return f"no recipients: give one number per line, e.g. {EXAMPLE_LINE}"
    return (
        f"no recipients: the header on line {header.line} has no rows under it; "
        "add one row per recipient"
    )


# --- the /robocall call command -----------------------------------------------------


def _take_workflow(words: list[str]) -> tuple[str, list[str], list[LineProblem]]:
    """The workflow, the words after it, and why there is none."""
    hint = f"start with the workflow's name or id, e.g. {EXAMPLE_COMMAND}"
    if not words or not words[0].strip():
        return "", words[1:], [LineProblem(None, "", f"no workflow given; {hint}")]
    first = words[0]
    # Workflow ids are UUIDs and names are words: a first word that is a number,
    # a mention or a value means the workflow was left out, so read it as such.
    is_number = first.startswith("+") and bool(_NUMBERISH.fullmatch(first))
    if "=" in first or _is_mention(first) or is_number:
        return "", words, [LineProblem(None, first, f"{quoted(first)} is not a workflow; {hint}")]
    return first, words[1:], []


def _read_settings(words: list[str]) -> tuple[str | None, dict[str, str], list[LineProblem]]:
    """The voice and the shared variables among `words` (the name=value ones)."""
    voice: str | None = None
    shared: dict[str, str] = {}
    problems: list[LineProblem] = []
    for word in words:
        if "=" not in word:
            continue
        name, value = word.split("=", 1)
        if name.strip().lower() == VOICE:
            message = _voice_problem(voice, value)
            if message is None:
                voice = value
        else:
            message = _pair_problem(word, name, value)
            if message is None and name in shared:
                message = _duplicate_message(name, shared[name], value)
            if message is None:
                shared[name] = value
        if message is not None:
            problems.append(LineProblem(None, word, message))
    return voice, shared, problems


def _take_at(words: list[str]) -> tuple[str | None, list[str], list[LineProblem]]:
    """`at=<when>` taken out of `words` (with the clock after a day word: `at=tomorrow
    09:00` is one time), the words left, and why it cannot be read as given (only its
    form here: bot.input.schedules reads the time)."""
    at: str | None = None
    left: list[str] = []
    problems: list[LineProblem] = []
    index = 0
    while index < len(words):
        word = words[index]
        index += 1
        name, sign, value = word.partition("=")
        if not sign or name.strip().lower() != AT:
            left.append(word)
            continue
        value = value.strip()
        if (
            _DAY_WORD.fullmatch(value)
            and index < len(words)
            and _CLOCK_WORD.fullmatch(words[index])
        ):
            value = f"{value} {words[index]}"
            index += 1
        if not value:
            message = f"at= has no value; give a time, e.g. {EXAMPLE_AT} or at=tomorrow 09:00"
        elif at is not None:
            message = f"at is given twice ({quoted(at)}, then {quoted(value)}); give one"
        else:
            at, message = value, None
        if message is not None:
            problems.append(LineProblem(None, word, message))
    return at, left, problems


def _voice_problem(earlier: str | None, value: str) -> str | None:
    if not value:
        return f"voice= has no value; give one, e.g. {EXAMPLE_VOICE}"
    if earlier is not None:
        return (
            f"voice is given twice ({quoted(earlier)}, then {quoted(value)}); "
            f"give one, e.g. {EXAMPLE_VOICE}"
        )
    return None


def _gather_numbers(words: list[str]) -> list[str]:
    """The numbers among `words`: commas separate them, spaced groups continue them, and
    an extension typed after one (`ext. 5`) stays with it."""
    numbers: list[str] = []
    pieces = _pieces(words)
    can_continue = False
    at = 0
    while at < len(pieces):
        piece = pieces[at]
        # This piece and the next unless a comma or name=value parts them: an extension
        # may take two (`ext. 5`).
        run: list[str] = []
        for following in pieces[at : at + 2]:
            if following is None:
                break
            run.append(following)
        if piece is None:
            can_continue = False
        elif can_continue and (taken := _extension_length(run)):
            numbers[-1] = " ".join([numbers[-1], *run[:taken]])
            can_continue = False
            at += taken - 1
        elif can_continue and _is_continuation(piece):
            numbers[-1] = f"{numbers[-1]} {piece}"
        else:
            numbers.append(piece)
            can_continue = not _is_mention(piece)
        at += 1
    return numbers


def _pieces(words: list[str]) -> list[str | None]:
    """`words` split at commas, without empty pieces; None where a number must end (a
    comma, a name=value)."""
    pieces: list[str | None] = []
    for word in words:
        if "=" in word:
            pieces.append(None)
            continue
        for index, piece in enumerate(word.split(",")):
            if index > 0:
                pieces.append(None)
            if piece.strip():
                pieces.append(piece.strip())
    return pieces


def _extension_length(words: Sequence[str]) -> int:
    """How many of the first `words` are an extension typed after a number (0, 1 or 2)."""
    found = _EXTENSION.fullmatch(words[0]) if words else None
    if found is None:
        return 0
    if found.group(1):
        return 1
    return 2 if len(words) > 1 and _EXTENSION_DIGITS.fullmatch(words[1]) else 0
