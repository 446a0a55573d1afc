"""Recipients from pasted lines, pasted CSV and `/robocall call …`: structure and problems."""

from __future__ import annotations

import csv
import io
import shlex

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.core.orders import InvalidOrder, check_recipients
from bot.input.recipients import (
    PHONE_COLUMNS,
    CallCommand,
    LineProblem,
    Recipient,
    RecipientLine,
    RecipientsError,
    parse_call_command,
    parse_recipient_lines,
)
from bot.providers.intron.provider import CAPABILITIES


def problems_of(text: str, **kw: int) -> list[LineProblem]:
    with pytest.raises(RecipientsError) as caught:
        parse_recipient_lines(text, **kw)
    return caught.value.problems


def command_problems(text: str) -> list[LineProblem]:
    with pytest.raises(RecipientsError) as caught:
        parse_call_command(text)
    return caught.value.problems


def messages(problems: list[LineProblem]) -> list[str]:
    return [str(p) for p in problems]


# --- free form ------------------------------------------------------------------------


def test_a_number_typed_with_spaces_is_one_number() -> None:
    assert parse_recipient_lines("+234 807 696 0623 name=Ada") == [
        RecipientLine(1, "+234 807 696 0623", {"name": "Ada"})
    ]


@pytest.mark.parametrize(
    "typed",
    [
        "+2348076960623",
        "+234 807 696 0623",
        "+234-807-696-0623",
        "+234 (0) 807 696 0623",
        "+44 20 7946 0958",
        "0807 696 0623",
        "+234.807.696.0623",
    ],
)
def test_numbers_keep_the_form_they_were_typed_in(typed: str) -> None:
    (recipient,) = parse_recipient_lines(f"{typed} date=Monday")
    assert recipient.phone == typed
    assert recipient.variables == {"date": "Monday"}


@pytest.mark.parametrize("typed", ["+234 807-696-0623", "+1 (415) 555-0123"])
def test_groups_of_up_to_4_digits_continue_a_number(typed: str) -> None:
    (recipient,) = parse_recipient_lines(f"{typed} name=Ada")
    assert recipient.phone == typed
    assert recipient.variables == {"name": "Ada"}


def test_a_run_of_more_than_4_digits_does_not_continue_a_number() -> None:
    problems = problems_of("+234 80769 60623")
    assert [p.value for p in problems] == ["80769", "60623"]
    assert all("looks like a number; give one number per line" in p.message for p in problems)


def test_lines_are_numbered_as_pasted_skipping_blanks_and_comments() -> None:
    text = "# clinic list\n+2348076960621 name=Ada\n\n   \n  # another\n+2348076960622 name=Bo\n"
    assert parse_recipient_lines(text) == [
        RecipientLine(2, "+2348076960621", {"name": "Ada"}),
        RecipientLine(6, "+2348076960622", {"name": "Bo"}),
    ]


def test_windows_and_old_mac_line_endings_count_as_one_line_each() -> None:
    recipients = parse_recipient_lines("+2348076960621\r\n\r\n+2348076960622\r+2348076960623")
    assert [(r.line, r.phone) for r in recipients] == [
        (1, "+2348076960621"),
        (3, "+2348076960622"),
        (4, "+2348076960623"),
    ]


def test_quoted_values_hold_spaces_and_equals_signs() -> None:
    (recipient,) = parse_recipient_lines(
        '+2348076960623 name="Ada Obi" place=\'Ward 3\' note=a=b empty= "quoted=x y"'
    )
    assert recipient.variables == {
        "name": "Ada Obi",
        "place": "Ward 3",
        "note": "a=b",
        "empty": "",
        "quoted": "x y",
    }


def test_smart_quotes_from_slack_are_read_as_straight_quotes() -> None:
    (recipient,) = parse_recipient_lines(
        "+2348076960623 name=\u201cAda Obi\u201d place=\u2018Ward 3\u2019 "
        "who=\u201cO\u2019Brien\u201d"
    )
    assert recipient.variables == {"name": "Ada Obi", "place": "Ward 3", "who": "O'Brien"}


def test_non_breaking_spaces_separate_words_like_spaces() -> None:
    (recipient,) = parse_recipient_lines("+234\u00a0807\u00a0696\u00a00623\u202fname=Ada")
    assert recipient == RecipientLine(1, "+234 807 696 0623", {"name": "Ada"})


def test_invisible_marks_from_exports_are_dropped() -> None:
    (recipient,) = parse_recipient_lines("\ufeff+234807\u200b6960623 name=Ada")
    assert recipient.phone == "+2348076960623"


def test_a_line_with_only_a_number_has_no_variables() -> None:
    assert parse_recipient_lines("+2348076960623") == [RecipientLine(1, "+2348076960623", {})]


def test_to_recipient_gives_what_validation_takes() -> None:
    line = RecipientLine(4, "+234 807 696 0623", {"name": "Ada"})
    recipient = line.to_recipient()
    assert recipient == Recipient("+234 807 696 0623", {"name": "Ada"})
    assert recipient.variables is not line.variables


def test_a_word_that_is_not_name_value_is_named_with_a_fix() -> None:
    problems = problems_of("+2348076960621 name=Bo\n\n+2348076960623 Ada")
    assert messages(problems) == ["line 3: 'Ada' is not name=value; write e.g. name=Ada"]
    assert problems[0] == LineProblem(3, "Ada", problems[0].message)


def test_every_problem_on_every_line_is_collected() -> None:
    text = "\n".join(
        [
            "+2348076960621 =x",  # 1: empty name
            "+2348076960622 name=a name=b",  # 2: duplicate name
            "+2348076960623 first-name=Ada",  # 3: not a variable name
            '+2348076960624 name="Ada',  # 4: unbalanced quote
            "+2348076960625 name=Ada",  # 5: fine
            "+2348076960626 +2348076960627",  # 6: two numbers
            "name=Ada",  # 7: no number
            "@ada name=Ada",  # 8: a mention
            "+2348076960628 name=Ada # note",  # 9: a comment at the end
            "+2348076960629 x\\",  # 10: lone backslash
        ]
    )
    problems = problems_of(text)
    assert [p.line for p in problems] == [1, 2, 3, 4, 6, 7, 8, 9, 9, 10]
    text_of = messages(problems)
    assert text_of[0] == "line 1: '=x' has no name before '='; write e.g. name=x"
    assert text_of[1] == "line 2: 'name' is given twice ('a', then 'b'); keep one"
    assert "'first-name' is not a variable name" in text_of[2]
    assert "e.g. first_name=Ada" in text_of[2]
    assert "line 4: " in text_of[3] and "quote that is never closed" in text_of[3]
    assert 'name="Ada Obi"' in text_of[3]
    assert "'+2348076960627' is not name=value and looks like a number" in text_of[4]
    assert "one number per line" in text_of[4]
    assert "'name=Ada' does not start with a number" in text_of[5]
    assert "e.g. +2348076960623 name=Ada" in text_of[5]
    assert "'@ada' is not a Slack mention; pick the person from Slack's @ list" in text_of[6]
    assert "'#' is not name=value; a comment needs a line of its own" in text_of[7]
    assert "'note' is not name=value; write e.g. name=note" in text_of[8]
    assert "ends with a lone backslash" in text_of[9]


def test_problems_name_the_value() -> None:
    (empty_name,) = problems_of("+2348076960623 =Ada")
    assert empty_name.value == "=Ada"
    (duplicate,) = problems_of("+2348076960623 name=a name=b")
    assert duplicate.value == "name=b"


def test_an_apostrophe_outside_double_quotes_explains_itself() -> None:
    (problem,) = problems_of("+2348076960623 name=O'Brien")
    assert """name="O'Brien\"""" in problem.message


def test_a_suggested_name_is_a_valid_name() -> None:
    (problem,) = problems_of("+2348076960623 1st=Ada")
    assert "e.g. _1st=Ada" in problem.message
    (problem,) = problems_of("+2348076960623 ¿?=Ada")
    assert "e.g. name=Ada" in problem.message


def test_a_quoted_word_keeps_quotes_in_the_suggestion() -> None:
    (problem,) = problems_of('+2348076960623 "Ada Obi"')
    assert problem.message == """'Ada Obi' is not name=value; write e.g. name="Ada Obi\""""


def test_long_values_are_shortened_in_messages() -> None:
    (problem,) = problems_of("+2348076960623 " + "x" * 500)
    assert problem.value == "x" * 500
    assert len(problem.message) < 150 and "…" in problem.message


def test_no_recipients_says_how_to_give_them() -> None:
    for text in ["", "\n\n  \n", "# just a comment\n"]:
        assert messages(problems_of(text)) == [
            "no recipients: give one number per line, e.g. +2348076960623 name=Ada"
        ]


def test_more_than_the_limit_is_refused_with_the_count() -> None:
    text = "\n".join(f"+23480769{i:05d}" for i in range(12_000))
    (problem,) = problems_of(text)
    assert str(problem) == "12,000 recipients; at most 10,000 per request"
    assert problem.line is None


def test_the_limit_itself_is_allowed() -> None:
    assert len(parse_recipient_lines("+2348076960621\n+2348076960622", max_recipients=2)) == 2
    (problem,) = problems_of("+2348076960621\n+2348076960622\n+2348076960623", max_recipients=2)
    assert problem.message == "3 recipients; at most 2 per request"


def test_bad_lines_count_towards_the_limit() -> None:
    problems = problems_of("+2348076960621 Ada\n+2348076960622\n+2348076960623", max_recipients=2)
    assert [p.line for p in problems] == [1, None]


def test_the_error_lists_every_problem() -> None:
    with pytest.raises(RecipientsError) as caught:
        parse_recipient_lines("+2348076960621 Ada\n+2348076960622 Bo")
    assert str(caught.value) == (
        "line 1: 'Ada' is not name=value; write e.g. name=Ada; "
        "line 2: 'Bo' is not name=value; write e.g. name=Bo"
    )
    assert isinstance(caught.value, ValueError)


def test_the_error_message_stays_short_but_every_problem_is_kept() -> None:
    with pytest.raises(RecipientsError) as caught:
        parse_recipient_lines("\n".join(f"+2348076960623 x{i}" for i in range(1000)))
    assert len(caught.value.problems) == 1000
    assert str(caught.value).endswith("; and 980 more")
    assert str(caught.value).count("is not name=value") == 20


def test_validation_problems_map_back_to_the_lines_typed() -> None:
    lines = parse_recipient_lines("# list\n+2348076960621 name=Ada\n\n+234 80 name=Bo\n")
    with pytest.raises(InvalidOrder) as caught:
        check_recipients(
            [line.to_recipient() for line in lines],
            template="Hello [name]",
            capabilities=CAPABILITIES,
        )
    (problem,) = caught.value.problems
    assert problem.recipient is not None
    assert lines[problem.recipient - 1].line == 4


# --- CSV --------------------------------------------------------------------------------


def test_csv_with_a_header_gives_variables_by_column() -> None:
    text = 'phone,name,date\n+2348076960621,Ada,Monday\n+2348076960622,"Obi, Bo",Tuesday\n'
    assert parse_recipient_lines(text) == [
        RecipientLine(2, "+2348076960621", {"name": "Ada", "date": "Monday"}),
        RecipientLine(3, "+2348076960622", {"name": "Obi, Bo", "date": "Tuesday"}),
    ]


@pytest.mark.parametrize(
    "column",
    [
        "phone",
        "Phone",
        " PHONE ",
        "phone_number",
        "Phone Number",
        "number",
        "MSISDN",
        "mobile",
        "tel",
    ],
)
def test_the_phone_column_can_have_any_usual_name(column: str) -> None:
    (recipient,) = parse_recipient_lines(f"name,{column}\nAda,+2348076960623")
    assert recipient == RecipientLine(2, "+2348076960623", {"name": "Ada"})


def test_phone_columns_are_the_documented_ones() -> None:
    assert {"phone", "phone_number", "number", "msisdn", "mobile", "tel"} == PHONE_COLUMNS


@pytest.mark.parametrize("delimiter", [",", ";", "\t"])
def test_comma_semicolon_and_tab_are_delimiters(delimiter: str) -> None:
    text = delimiter.join(["phone", " name "]) + "\n" + delimiter.join(["+2348076960623", " Ada"])
    assert parse_recipient_lines(text) == [RecipientLine(2, "+2348076960623", {"name": "Ada"})]


def test_semicolon_csv_may_hold_commas_in_cells() -> None:
    (recipient,) = parse_recipient_lines("phone;name\n+2348076960623;Obi, Ada")
    assert recipient.variables == {"name": "Obi, Ada"}


def test_csv_cells_are_stripped_and_empty_ones_kept() -> None:
    text = "phone, name, date\n +2348076960621 , Ada ,\n+2348076960622\n"
    assert parse_recipient_lines(text) == [
        RecipientLine(2, "+2348076960621", {"name": "Ada", "date": ""}),
        RecipientLine(3, "+2348076960622", {"name": "", "date": ""}),
    ]


def test_csv_line_numbers_count_blank_and_comment_lines_before_the_header() -> None:
    text = "\ufeff# export\n\nphone,name\n\n+2348076960621,Ada\n,,\n+2348076960622,Bo"
    recipients = parse_recipient_lines(text)
    assert [r.line for r in recipients] == [5, 7]


def test_a_hash_after_the_header_is_data_not_a_comment() -> None:
    (recipient,) = parse_recipient_lines("ward,phone\n#3,+2348076960623")
    assert recipient.variables == {"ward": "#3"}


def test_trailing_empty_cells_beyond_the_header_are_ignored() -> None:
    (recipient,) = parse_recipient_lines("phone,name\n+2348076960623,Ada,,")
    assert recipient.variables == {"name": "Ada"}


def test_an_empty_unnamed_column_is_ignored() -> None:
    (recipient,) = parse_recipient_lines("phone,,name\n+2348076960623,,Ada")
    assert recipient.variables == {"name": "Ada"}


def test_a_free_form_line_with_a_phone_like_value_is_not_a_header() -> None:
    (recipient,) = parse_recipient_lines("+2348076960623 note=call,mobile,later")
    assert recipient.variables == {"note": "call,mobile,later"}


def test_csv_problems_name_line_value_and_fix() -> None:
    text = "\n".join(
        [
            "phone,name",  # 1
            "+2348076960621,Obi, Ada",  # 2: a cell too many
            ",Bo",  # 3: no phone
            '+2348076960623,"Cy',  # 4: a quote never closed, runs to the end
            "+2348076960624,Di",  # 5: swallowed by line 4's quote
        ]
    )
    problems = problems_of(text)
    assert [p.line for p in problems] == [2, 3, 4]
    extra, empty, unclosed = problems
    assert extra.value == "Ada"
    assert str(extra) == (
        "line 2: 3 cells but the header on line 1 has 2 columns, so 'Ada' has no column; "
        'put quotes around a value that holds a comma, e.g. "Obi, Ada"'
    )
    assert str(empty) == (
        "line 3: the 'phone' cell is empty; give a number, e.g. +2348076960623, or delete the row"
    )
    assert str(unclosed) == (
        "line 4: the quote before 'Cy' is never closed on line 4 (the row runs on to line 5); "
        'close it, e.g. "Obi, Ada"'
    )


def test_a_quote_left_open_on_the_last_line_is_reported() -> None:
    (problem,) = problems_of('phone,name\n+2348076960623,"Ada')
    assert (
        str(problem)
        == "line 2: the quote before 'Ada' is never closed on line 2; close it, e.g. \"Obi, Ada\""
    )


def test_csv_header_problems() -> None:
    problems = problems_of("phone,name,name,\n+2348076960623,Ada,Obi,extra")
    assert messages(problems) == [
        "line 1: column 'name' appears twice in the header; rename or remove one",
        "line 2: 'extra' is in column 4, which has no name on line 1; "
        "name the column or remove the value",
    ]


def test_a_header_alone_is_no_recipients() -> None:
    assert messages(problems_of("phone,name\n\n")) == [
        "no recipients: the header on line 1 has no rows under it; add one row per recipient"
    ]


def test_a_mention_in_the_phone_column_is_a_slack_user() -> None:
    (line,) = parse_recipient_lines("phone,name\n<@U123>,Ada")
    assert (line.line, line.user, line.variables) == (2, "U123", {"name": "Ada"})
    (problem,) = problems_of("phone\n@ada")
    assert str(problem).startswith("line 2: '@ada' is not a Slack mention")


def test_csv_rows_count_towards_the_limit() -> None:
    (problem,) = problems_of("phone\n+2348076960621\n+2348076960622", max_recipients=1)
    assert problem.message == "2 recipients; at most 1 per request"


# --- the /robocall call command --------------------------------------------------------


def test_a_full_command() -> None:
    command = parse_call_command(
        'reminder +234 807 696 0623, +2348076960624 name=Ada date="next Monday" voice=igbo/female'
    )
    shared = {"name": "Ada", "date": "next Monday"}
    assert command == CallCommand(
        workflow="reminder",
        recipients=[
            RecipientLine(1, "+234 807 696 0623", shared),
            RecipientLine(2, "+2348076960624", shared),
        ],
        shared_variables=shared,
        voice="igbo/female",
    )


def test_each_recipient_has_its_own_copy_of_the_shared_variables() -> None:
    command = parse_call_command("reminder +2348076960621 +2348076960622 name=Ada")
    first, second = command.recipients
    assert first.variables is not second.variables
    assert first.variables is not command.shared_variables


def test_a_quoted_workflow_name_with_smart_quotes() -> None:
    command = parse_call_command("\u201cAppointment reminder\u201d +2348076960623")
    assert command.workflow == "Appointment reminder"
    assert command.voice is None and command.shared_variables == {}


@pytest.mark.parametrize(
    ("numbers", "expected"),
    [
        ("+2348076960621,+2348076960622", ["+2348076960621", "+2348076960622"]),
        ("+2348076960621, +2348076960622,", ["+2348076960621", "+2348076960622"]),
        ("+2348076960621 +2348076960622", ["+2348076960621", "+2348076960622"]),
        ("+234 807 696 0621 +234 807 696 0622", ["+234 807 696 0621", "+234 807 696 0622"]),
        ("+234 807 696 0621,+234 807 696 0622", ["+234 807 696 0621", "+234 807 696 0622"]),
        ("0807 696 0621, 0807 696 0622", ["0807 696 0621", "0807 696 0622"]),
        ("08076960621 08076960622", ["08076960621", "08076960622"]),
        ("+234 807, 696", ["+234 807", "696"]),
        ('"+234 807 696 0621" 0622', ["+234 807 696 0621 0622"]),
        ("+1 (415) 555 0123", ["+1 (415) 555 0123"]),
        (",,+2348076960621,,", ["+2348076960621"]),
    ],
)
def test_commas_separate_numbers_and_short_groups_continue_them(
    numbers: str, expected: list[str]
) -> None:
    command = parse_call_command(f"reminder {numbers}")
    assert [r.phone for r in command.recipients] == expected
    assert [r.line for r in command.recipients] == list(range(1, len(expected) + 1))


def test_a_name_value_ends_the_number_before_it() -> None:
    command = parse_call_command("reminder +234 807 name=Ada 696 0623")
    assert [r.phone for r in command.recipients] == ["+234 807", "696 0623"]


def test_voice_may_be_written_in_any_case() -> None:
    assert parse_call_command("reminder +2348076960623 Voice=yoruba/male").voice == "yoruba/male"


def test_an_empty_command_lacks_workflow_and_recipients() -> None:
    assert messages(command_problems("  ")) == [
        "no workflow given; start with the workflow's name or id, "
        "e.g. /robocall call reminder +2348076960623 name=Ada",
        "no recipients: add one or more numbers after the workflow, "
        "e.g. /robocall call reminder +2348076960623 name=Ada",
    ]


def test_a_workflow_alone_lacks_recipients() -> None:
    (problem,) = command_problems("reminder name=Ada")
    assert problem.line is None
    assert problem.message == (
        "no recipients: add one or more numbers after the workflow, "
        "e.g. /robocall call reminder +2348076960623 name=Ada"
    )


@pytest.mark.parametrize("first", ["+2348076960623", "name=Ada", "<@U123>"])
def test_a_left_out_workflow_is_noticed(first: str) -> None:
    problems = command_problems(f"{first} +2348076960624")
    assert problems[0].line is None and problems[0].value == first
    assert problems[0].message.startswith(f"'{first}' is not a workflow; start with the workflow")


def test_voice_problems() -> None:
    problems = command_problems(
        "reminder +2348076960623 voice=igbo/female voice=yoruba/male voice="
    )
    assert messages(problems) == [
        "voice is given twice ('igbo/female', then 'yoruba/male'); "
        "give one, e.g. voice=igbo/female",
        "voice= has no value; give one, e.g. voice=igbo/female",
    ]


def test_shared_variable_problems_are_about_the_whole_command() -> None:
    problems = command_problems("reminder +2348076960623 name=Ada name=Bo =x first-name=y")
    assert [p.line for p in problems] == [None, None, None]
    assert problems[0].message == "'name' is given twice ('Ada', then 'Bo'); keep one"
    assert problems[1].value == "=x"
    assert "e.g. first_name=y" in problems[2].message


def test_an_unbalanced_quote_in_the_command() -> None:
    (problem,) = command_problems('reminder +2348076960623 name="Ada')
    assert problem.line is None
    assert problem.message.startswith("the command has a quote that is never closed; close it")


def test_mentions_are_slack_users_and_bare_names_are_reported() -> None:
    parsed = parse_call_command("reminder +2348076960621 <@U123|ada>,<@W9> name=Ada")
    assert [(r.line, r.phone, r.user) for r in parsed.recipients] == [
        (1, "+2348076960621", None),
        (2, "<@U123|ada>", "U123"),
        (3, "<@W9>", "W9"),
    ]
    assert parsed.recipients[1].variables == {"name": "Ada"}
    problems = command_problems("reminder +2348076960621 <@U123|ada> @bo")
    assert messages(problems) == [
        "recipient 3: '@bo' is not a Slack mention; pick the person from Slack's @ list "
        "(so that Slack sends it as a mention), or give a number instead, e.g. +2348076960623",
    ]
    assert problems[0].label == "recipient"


# --- properties -------------------------------------------------------------------------

DIGITS = "0123456789"

# A typed number: "+" and a first group, then groups of 1-4 digits after spaces.
numbers = st.builds(
    lambda head, groups: " ".join(["+" + head, *groups]),
    st.text(DIGITS, min_size=1, max_size=12),
    st.lists(st.text(DIGITS, min_size=1, max_size=4), max_size=4),
)

names = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,11}", fullmatch=True)

# Anything a person might put in a value, except line breaks, control characters and
# what the parser deliberately rewrites: curly quotes, and invisible format
# characters (category Cf: direction marks, zero-width spaces, soft hyphens), dropped.
values = st.text(
    st.characters(
        exclude_categories=("Cs", "Cc", "Cf", "Zl", "Zp"),
        exclude_characters="\u201c\u201d\u2018\u2019",
    ),
    max_size=20,
)


def test_invisible_format_characters_are_dropped_from_numbers_and_values() -> None:
    (recipient,) = parse_recipient_lines("\u200f+2348076960623 name=A\u00addo\u200bra")
    assert recipient.phone == "+2348076960623"
    assert recipient.variables == {"name": "Adora"}


variable_sets = st.dictionaries(names, values, max_size=4)
recipient_lists = st.lists(st.tuples(numbers, variable_sets), min_size=1, max_size=20)


@given(recipient_lists)
def test_lines_written_out_parse_back(recipients: list[tuple[str, dict[str, str]]]) -> None:
    text = "\n".join(
        " ".join([phone, *(f"{name}={shlex.quote(value)}" for name, value in variables.items())])
        for phone, variables in recipients
    )
    parsed = parse_recipient_lines(text)
    assert [(r.phone, r.variables) for r in parsed] == recipients
    assert [r.line for r in parsed] == list(range(1, len(recipients) + 1))


@given(
    recipient_lists,
    st.lists(names.filter(lambda n: n.lower() not in PHONE_COLUMNS), unique=True, max_size=4),
    st.integers(min_value=0, max_value=4),
    st.sampled_from([",", ";", "\t"]),
)
def test_csv_written_out_parses_back(
    recipients: list[tuple[str, dict[str, str]]],
    columns: list[str],
    phone_at: int,
    delimiter: str,
) -> None:
    header = list(columns)
    header.insert(min(phone_at, len(header)), "phone")
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=delimiter, lineterminator="\n")
    writer.writerow(header)
    rows = [(phone, [variables.get(c, "") for c in columns]) for phone, variables in recipients]
    for phone, cells in rows:
        row = list(cells)
        row.insert(min(phone_at, len(row)), phone)
        writer.writerow(row)
    parsed = parse_recipient_lines(buffer.getvalue())
    assert [(r.phone, r.variables) for r in parsed] == [
        (phone, {c: cell.strip() for c, cell in zip(columns, cells, strict=True)})
        for phone, cells in rows
    ]
    assert [r.line for r in parsed] == list(range(2, len(rows) + 2))


@given(
    st.from_regex(r"[A-Za-z][A-Za-z0-9 _-]{0,20}", fullmatch=True),
    st.lists(numbers, min_size=1, max_size=10),
    st.sampled_from([" ", ",", ", "]),
    st.dictionaries(names.filter(lambda n: n.lower() != "voice"), values, max_size=4),
    st.one_of(st.none(), st.sampled_from(["igbo/female", "yoruba/male", "x"])),
    st.booleans(),
)
def test_commands_written_out_parse_back(
    workflow: str,
    phones: list[str],
    separator: str,
    shared: dict[str, str],
    voice: str | None,
    settings_first: bool,
) -> None:
    settings = [f"{name}={shlex.quote(value)}" for name, value in shared.items()]
    if voice is not None:
        settings.append(f"voice={voice}")
    recipients = separator.join(phones)
    parts = [*settings, recipients] if settings_first else [recipients, *settings]
    command = parse_call_command(" ".join([shlex.quote(workflow), *parts]))
    assert command.workflow == workflow
    assert command.voice == voice
    assert command.shared_variables == shared
    assert command.recipients == [
        RecipientLine(position, phone, shared) for position, phone in enumerate(phones, start=1)
    ]


# Text with many of the characters the parsers treat specially, and anything else.
awkward = st.lists(
    st.one_of(
        st.sampled_from(list("+0123456789 ,;\t\n\r=\"'#@<>\\-().\u201c\u201d\u2018\u2019\u00a0")),
        st.sampled_from(["phone", "Phone Number", "name=", "voice=", "<@U1>", "\ufeff", "\u2028"]),
        st.characters(),
    ),
    max_size=80,
).map("".join)


@given(awkward)
def test_any_text_gives_recipients_or_a_recipients_error(text: str) -> None:
    lines = text.splitlines()
    try:
        parsed = parse_recipient_lines(text)
    except RecipientsError as exc:
        assert exc.problems
        assert all(p.line is None or 1 <= p.line <= len(lines) for p in exc.problems)
        assert all(p.message for p in exc.problems)
    else:
        assert parsed
        assert all(1 <= r.line <= len(lines) for r in parsed)


@given(awkward)
def test_any_command_gives_a_command_or_a_recipients_error(text: str) -> None:
    try:
        command = parse_call_command(text)
    except RecipientsError as exc:
        assert exc.problems
        assert all(p.message for p in exc.problems)
    else:
        assert command.workflow and command.recipients
        assert [r.line for r in command.recipients] == list(range(1, len(command.recipients) + 1))


@given(st.lists(numbers, min_size=1, max_size=5))
def test_spaced_numbers_never_run_into_each_other(phones: list[str]) -> None:
    command = parse_call_command("reminder " + " ".join(phones))
    assert [r.phone for r in command.recipients] == phones
