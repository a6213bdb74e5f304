"""/contacts as a user walks it: add, browse, search, edit, delete, groups, import, export,
and a group send through the /bulk dry run and job."""

from __future__ import annotations

import asyncio
import csv
import io
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiogram.methods import SendDocument
from aiogram.types import BufferedInputFile
from openpyxl import Workbook, load_workbook

from bot.commands import COMMANDS, commands_for
from bot.config import Settings
from handlers.callbacks import ContactAction, ContactCb
from services.bulk import BulkRunner
from services.bulk_plan import SourceCache
from services.contacts import FIELDS_MAX, Member, group_source
from storage import ContactRepo
from tests.conftest import GOOD_TOKEN, make_settings
from tests.fakes.fake_devsms import FakeDevsms
from tests.support.harness import Harness, button_data
from tests.support.notifiers import install
from tests.support.recording import SentMessage

SEND = "/send_sms.php"
LIMIT = 6
PEOPLE = (
    b"Name;Phone;City\n"
    b"Ali;+998 90 123 45 67;Tashkent\n"
    b"Vali;12345;X\n"
    b";901234568;Samarkand\n"
    b"Ali twice;998901234567;Again\n"
)


@pytest.fixture
def settings(tmp_path: Path, devsms: FakeDevsms) -> Settings:
    return make_settings(
        tmp_path, devsms.url, bulk_rate=200, contacts_limit=LIMIT, contact_groups_limit=2
    )


@pytest.fixture
async def bulk_app(app: Harness) -> AsyncIterator[Harness]:
    runner: BulkRunner = app.dp["bulk_runner"]
    install(app.dp, app.bot, None, app.services)
    yield app
    await runner.stop()


async def connect(app: Harness, user_id: int = 1, lang: str = "en") -> None:
    await app.send("/start", user_id, lang)
    await app.send(GOOD_TOKEN, user_id, lang)


def labels(message: SentMessage) -> list[str]:
    return [label for label, _ in message.buttons()]


def repo(app: Harness) -> ContactRepo:
    return app.services.contacts


async def add(app: Harness, typed: str) -> SentMessage:
    [book] = await app.send("/contacts")
    await app.tap(book, "Add")
    return (await app.send(typed))[-1]


async def new_group(app: Harness, name: str) -> SentMessage:
    [book] = await app.send("/contacts")
    [groups] = await app.tap(book, "Groups")
    await app.tap(groups, "New group")
    return (await app.send(name))[-1]


def sent_documents(app: Harness) -> list[BufferedInputFile]:
    files = [call.document for call in app.session.of(SendDocument)]
    assert all(isinstance(f, BufferedInputFile) for f in files)
    return files


async def test_empty_book_then_add_typed_and_shared(app: Harness) -> None:
    await connect(app)
    [book] = await app.send("/contacts")
    assert "📇 <b>Contacts</b>: 0 · groups: 0" in book.text
    assert "No contacts yet" in book.text
    assert labels(book) == ["➕ Add", "📥 Import", "🔎 Search", "👥 Groups"]
    [ask] = await app.tap(book, "Add")
    assert "Send the contact as «name, phone»" in ask.text
    [bad] = await app.send("Ali, 12345")
    assert "I found no valid phone number in it" in bad.text
    [bad] = await app.send("901234567")
    assert "The name is missing" in bad.text
    [bad] = await app.send("N" * 70 + ", 901234567")
    assert "The name is too long: at most 64 characters." in bad.text
    [bad] = await app.send_sticker()
    assert "Send «name, phone» as a text" in bad.text
    assert await repo(app).count(1) == 0  # nothing saved by the bad input
    [saved] = await app.send("Ali <Valiyev>, +998 90 123 45 67")
    assert "✅ Contact saved." in saved.text
    assert "👤 <b>Ali &lt;Valiyev&gt;</b>" in saved.text and "+998 90 123 45 67" in saved.text
    assert labels(saved) == ["✏️ Rename", "📝 Fields", "👥 Groups", "🗑 Delete", "⬅️ Contacts"]
    assert await app.state_of() is None

    [book] = await app.send("/contacts")
    await app.tap(book, "Add")
    [shared] = await app.send_contact("998901234568")
    assert "✅ Contact saved." in shared.text and "<b>Friend</b>" in shared.text
    again = await add(app, "Ali V, 901234567")
    assert "You had this number already" in again.text and "<b>Ali V</b>" in again.text
    [book] = await app.send("/contacts")
    assert "Contacts</b>: 2" in book.text
    assert labels(book)[:2] == ["Ali V · +998 90 123 45 67", "Friend · +998 90 123 45 68"]
    assert "📤 Export CSV" in labels(book)


async def test_a_shared_contact_with_a_bad_number_is_refused(app: Harness) -> None:
    await connect(app)
    [book] = await app.send("/contacts")
    await app.tap(book, "Add")
    [bad] = await app.send_contact("12")
    assert "This number is too short." in bad.text and "Send «name, phone» instead" in bad.text
    assert await repo(app).count(1) == 0


async def test_pages_and_search(app: Harness) -> None:
    await connect(app)
    for i in range(12):
        await repo(app).add(1, f"Person {i:02d}", f"9989012345{i:02d}", {}, limit=100)
    [book] = await app.send("/contacts")
    assert "Page 1 of 2" in book.text
    assert labels(book)[0] == "Person 00 · +998 90 123 45 00" and "▶️" in labels(book)
    [page2] = await app.tap(book, "▶️")
    assert "Page 2 of 2" in page2.text
    assert labels(page2)[:2] == ["Person 10 · +998 90 123 45 10", "Person 11 · +998 90 123 45 11"]
    assert "◀️" in labels(page2) and "▶️" not in labels(page2)
    [page1] = await app.tap(page2, "◀️")
    assert "Page 1 of 2" in page1.text
    # A forged page past the end shows the last page.
    forged = ContactCb(action=ContactAction.LIST, page=999).pack()
    [last] = await app.tap_data(page1, forged)
    assert "Page 2 of 2" in last.text

    [ask] = await app.tap(last, "Search")
    assert "Send part of a name or of a number" in ask.text
    [found] = await app.send("person 1")
    assert "Found for «person 1»: 2" in found.text  # Person 10, Person 11
    [found] = await app.send("234511")
    assert labels(found) == ["Person 11 · +998 90 123 45 11", "⬅️ Contacts"]
    [none] = await app.send("nobody%")
    assert "Nothing found for «nobody%»" in none.text
    [long] = await app.send("x" * 65)
    assert "That is too long: at most 64 characters." in long.text
    [opened] = await app.tap(found, "Person 11")
    assert "<b>Person 11</b>" in opened.text


async def test_rename_fields_and_delete_with_confirmation(app: Harness) -> None:
    await connect(app)
    card = await add(app, "Ali, 901234567")
    [ask] = await app.tap(card, "Rename")
    assert "Send the new name for «Ali»." in ask.text
    [bad] = await app.send("   .   ".replace(".", " "))
    assert "The name is missing" in bad.text
    [renamed] = await app.send("Ali Valiyev")
    assert "<b>Ali Valiyev</b>" in renamed.text

    [ask] = await app.tap(renamed, "Fields")
    assert "one per line as «name: value»" in ask.text
    for typed, said in [
        ("no colon here", "Write each field on its own line"),
        ("phone: 1", "Every contact has «phone» already"),
        ("city: " + "y" * 201, "The value of «city» is too long: at most 200 characters."),
    ]:
        [bad] = await app.send(typed)
        assert said in bad.text
    [saved] = await app.send("City: Tashkent\ncode = 77")
    assert "City: Tashkent" in saved.text and "code: 77" in saved.text
    assert "In a group send: {name}, {phone}, {City}, {code}" in saved.text
    await app.tap(saved, "Fields")
    [saved] = await app.send("code:")
    assert "code: 77" not in saved.text and "City: Tashkent" in saved.text

    [confirm] = await app.tap(saved, "Delete")
    assert "Delete the contact «Ali Valiyev» (+998 90 123 45 67)?" in confirm.text
    [kept] = await app.tap(confirm, "No, keep it")
    assert "<b>Ali Valiyev</b>" in kept.text
    [confirm] = await app.tap(kept, "Delete")
    drop = button_data(confirm, "Yes, delete")
    [book] = await app.tap(confirm, "Yes, delete")
    assert "Contact deleted." in [a.text for a in app.answers()]
    assert "Contacts</b>: 0" in book.text
    # The same button again (a double tap, an old copy): told, nothing breaks.
    await app.tap_data(confirm, drop)
    assert app.answers()[-1].text == "This contact no longer exists."
    assert await repo(app).count(1) == 0


async def test_contacts_of_another_user_cannot_be_reached(app: Harness) -> None:
    await connect(app)
    await connect(app, user_id=2)
    card = await add(app, "Ali, 901234567")
    forged = button_data(card, "Delete").replace("delete", "drop")
    await app.tap_data(card, forged, user_id=2)
    assert app.answers()[-1].text == "This contact no longer exists."
    assert await repo(app).count(1) == 1


async def test_groups_create_rename_tick_and_delete(app: Harness) -> None:
    await connect(app)
    [book] = await app.send("/contacts")
    [groups] = await app.tap(book, "Groups")
    assert "You have no groups yet" in groups.text
    await app.tap(groups, "New group")
    [bad] = await app.send("bad/name!")
    assert "A name is up to 32 letters or digits" in bad.text
    [created] = await app.send("VIP")
    assert "✅ Group created." in created.text and "<b>VIP</b>: 0 contacts" in created.text
    assert labels(created) == [
        "📤 Send to this group",
        "👁 Members",
        "📥 Import into this group",
        "✏️ Rename",
        "🗑 Delete",
        "⬅️ Groups",
    ]
    taken = await new_group(app, "vip")
    assert "You already have a group named «vip»" in taken.text
    await app.send("/cancel")
    await new_group(app, "Staff")
    [book] = await app.send("/contacts")
    [groups] = await app.tap(book, "Groups")
    assert "New group" not in " ".join(labels(groups))  # CONTACT_GROUPS_LIMIT=2 reached
    assert labels(groups)[:2] == ["Staff · 0", "VIP · 0"]

    card = await add(app, "Ali, 901234567")
    [ticks] = await app.tap(card, "Groups")
    assert labels(ticks) == ["▫️ Staff", "▫️ VIP", "⬅️ Back"]
    [ticks] = await app.tap(ticks, "VIP")
    assert labels(ticks) == ["▫️ Staff", "✅ VIP", "⬅️ Back"]
    [back] = await app.tap(ticks, "Back")
    assert "Groups: VIP" in back.text

    [book] = await app.send("/contacts")
    [groups] = await app.tap(book, "Groups")
    [vip] = await app.tap(groups, "VIP")
    [members] = await app.tap(vip, "Members")
    assert labels(members) == ["Ali · +998 90 123 45 67", "⬅️ Back"]
    [vip] = await app.tap(members, "Back")
    await app.tap(vip, "Rename")
    [bad] = await app.send("Staff")
    assert "You already have a group named «Staff»" in bad.text
    [renamed] = await app.send("Clients")
    assert "✅ Group renamed." in renamed.text and "<b>Clients</b>: 1 contact" in renamed.text
    [confirm] = await app.tap(renamed, "Delete")
    assert "Its contacts stay in your address book" in confirm.text
    [groups] = await app.tap(confirm, "Yes, delete")
    assert labels(groups)[0] == "Staff · 0"
    assert await repo(app).count(1) == 1


async def test_limits_are_told_at_the_buttons(app: Harness) -> None:
    await connect(app)
    for i in range(LIMIT):
        await repo(app).add(1, f"P{i}", f"99890123456{i}", {}, limit=LIMIT)
    [book] = await app.send("/contacts")
    await app.tap(book, "Add")
    assert app.answers()[-1].text == "You have 6 contacts, the most I keep. Delete some first."
    assert await app.state_of() is None
    await new_group(app, "A")
    await new_group(app, "B")
    [book] = await app.send("/contacts")
    [groups] = await app.tap(book, "Groups")
    new = button_data(groups, "A").replace("open", "new")  # an old "New group" button
    await app.tap_data(groups, new)
    assert app.answers()[-1].text == "You have 2 groups, the most I keep. Delete one first."


async def test_import_file_into_a_group_with_a_summary(app: Harness) -> None:
    await connect(app)
    group = await new_group(app, "VIP")
    [ask] = await app.tap(group, "Import into this group")
    assert "They will be put into the group «VIP» too." in ask.text
    await repo(app).add(1, "Known", "998901234568", {"Age": "30"}, limit=LIMIT)
    [summary] = await app.send_document("people.csv", PEOPLE)
    assert "📥 <b>Import done</b>" in summary.text
    assert "Rows read: 4" in summary.text
    assert "➕ Added: 1" in summary.text and "🔄 Updated: 1" in summary.text
    assert "♻️ Duplicates in the file: 1" in summary.text
    assert "❌ Not imported: 1" in summary.text
    assert "row 3: «12345» — number too short" in summary.text
    assert "All of them are in the group «VIP»." in summary.text
    book = {c.phone: c for c in await repo(app).everyone(1)}
    assert book["998901234567"].name == "Ali"
    assert book["998901234567"].fields == {"City": "Tashkent"}
    # No name in the file for a known number: its name stays, the fields merge.
    assert book["998901234568"].name == "Known"
    assert book["998901234568"].fields == {"Age": "30", "City": "Samarkand"}
    [(vip, _)] = await repo(app).groups(1, offset=0, limit=5)
    assert vip.size == 2


async def test_pasted_lines_and_an_import_over_the_limit_saves_nothing(app: Harness) -> None:
    await connect(app)
    [book] = await app.send("/contacts")
    await app.tap(book, "Import")
    [summary] = await app.send("Ali, 901234567\nVali; 901234568")
    assert "➕ Added: 2" in summary.text
    assert await app.state_of() is None
    [book] = await app.send("/contacts")
    await app.tap(book, "Import")
    lines = "\n".join(f"P{i}, 90123450{i}" for i in range(5))
    [refused] = await app.send(lines)
    assert "This would bring your address book to 7 contacts, over the limit of 6." in (
        refused.text
    )
    assert "Nothing was imported" in refused.text
    assert "leave enough new numbers out of the file (at least 1)" in refused.text
    assert await repo(app).count(1) == 2
    [summary] = await app.send("\n".join(lines.splitlines()[:4]))
    assert "➕ Added: 4" in summary.text


async def test_imports_with_new_columns_keep_the_fields_bounded(app: Harness) -> None:
    """Each import merged in every column of its file, so a book grew without limit (and the
    export and every group send slowed with it). Past FIELDS_MAX the new columns are left
    out, and the summary says so."""
    await connect(app)
    summaries = []
    for batch in range(3):
        columns = [f"c{batch}_{n}" for n in range(12)]
        head = ";".join(["Name", "Phone", *columns])
        line = ";".join(["Ali", "+998 90 123 45 67", *(f"v{n}" for n in range(12))])
        [book] = await app.send("/contacts")
        await app.tap(book, "Import")
        [summary] = await app.send_document("more.csv", f"{head}\n{line}\n".encode())
        summaries.append(summary.text)
    [ali] = await repo(app).everyone(1)
    assert len(ali.fields) == FIELDS_MAX
    assert "c0_0" in ali.fields and "c1_7" in ali.fields and "c2_0" not in ali.fields
    assert "fields" not in summaries[0]
    for text in summaries[1:]:
        assert "1 contact would have more than 20 fields" in text


async def test_files_with_nothing_usable(app: Harness) -> None:
    await connect(app)
    [book] = await app.send("/contacts")
    await app.tap(book, "Import")
    [empty] = await app.send_document("empty.csv", b"\n\n")
    assert "/cancel stops." in empty.text
    [no_column] = await app.send_document("x.csv", b"name,city\nAli,X\nVali,Y\n")
    assert "I could not find a column with phone numbers" in no_column.text
    [nothing] = await app.send_document("bad.csv", b"name,phone\nAli,12345\nVali,123\n")
    assert "Nothing in it can be imported" in nothing.text
    assert "row 2: «12345» — number too short" in nothing.text
    [sticker] = await app.send_sticker()
    assert "Send it as a text message, or /cancel." in sticker.text
    [unsupported] = await app.send_document("list.pdf", b"%PDF-1.4")
    assert unsupported.text
    assert await repo(app).count(1) == 0
    await app.send("/cancel")
    assert await app.state_of() is None


async def test_export_csv_and_xlsx(app: Harness) -> None:
    await connect(app)
    await repo(app).add(1, "=cmd()", "998901234567", {"city": "Tashkent"}, limit=LIMIT)
    await repo(app).add(1, "Vali", "998901234568", {}, limit=LIMIT)
    group = await repo(app).create_group(1, "VIP", limit=2)
    assert group is not None
    await repo(app).import_rows(1, [], limit=LIMIT, group_id=group.id)
    [first] = await repo(app).page(1, offset=0, limit=1)
    await repo(app).set_member(1, group.id, first.id, True)
    [book] = await app.send("/contacts")
    await app.tap(book, "Export CSV")
    await app.tap(book, "Export Excel")
    csv_file, xlsx_file = sent_documents(app)
    assert csv_file.filename == "contacts.csv" and xlsx_file.filename == "contacts.xlsx"
    rows = list(csv.reader(io.StringIO(csv_file.data.decode("utf-8-sig"))))
    assert rows == [
        ["name", "phone", "groups", "city"],
        ["'=cmd()", "998901234567", "VIP", "Tashkent"],
        ["Vali", "998901234568", "", ""],
    ]
    sheet = load_workbook(io.BytesIO(xlsx_file.data)).active
    assert sheet is not None
    assert [c.value for c in sheet[2]] == ["'=cmd()", "998901234567", "VIP", "Tashkent"]


async def test_send_to_a_group_through_the_bulk_dry_run(
    bulk_app: Harness, devsms: FakeDevsms
) -> None:
    app = bulk_app
    await connect(app)
    await repo(app).add(1, "Ali", "998901234567", {"city": "Tashkent"}, limit=LIMIT)
    await repo(app).add(1, "Vali", "998901234568", {}, limit=LIMIT)
    await repo(app).add(1, "Not in it", "998901234569", {}, limit=LIMIT)
    group = await repo(app).create_group(1, "VIP", limit=2)
    assert group is not None
    ali = await repo(app).by_phone(1, "998901234567")
    vali = await repo(app).by_phone(1, "998901234568")
    assert ali is not None and vali is not None
    await repo(app).set_member(1, group.id, ali.id, True)
    await repo(app).set_member(1, group.id, vali.id, True)

    # From /bulk: "Send to a group" opens the groups.
    [ask] = await app.send("/bulk")
    [groups] = await app.tap(ask, "Send to a group")
    [opened] = await app.tap(groups, "VIP")
    [ask_text] = await app.tap(opened, "Send to this group")
    assert "Group «VIP»: rows: 2, numbers in column «phone»: 2." in ask_text.text
    assert "Columns: «name», «phone», «city»" in ask_text.text
    [review] = await app.send("Salom {name} ({city})")
    assert "Group: VIP" in review.text
    assert "✅ To send: 2" in review.text
    assert "Salom Ali (Tashkent)" in review.text and "Salom Vali ()" in review.text
    assert devsms.sent == []  # the dry run sends nothing
    sent = await app.tap(review, "Start")
    assert any("Bulk job #" in m.text for m in sent)
    async with asyncio.timeout(5):
        got = await devsms.wait_sent(2)
    assert sorted((s.phone, s.message) for s in got) == [
        ("998901234567", "Salom Ali (Tashkent)"),
        ("998901234568", "Salom Vali ()"),
    ]
    assert len(devsms.requests_to(SEND)) == 2


async def test_an_empty_group_and_a_group_changed_before_start(bulk_app: Harness) -> None:
    app = bulk_app
    await connect(app)
    opened = await new_group(app, "VIP")
    await app.tap(opened, "Send to this group")
    assert app.answers()[-1].text == "The group «VIP» is empty: add contacts to it first."
    row, _ = await repo(app).add(1, "Ali", "998901234567", {}, limit=LIMIT)
    [(group, _member)] = await repo(app).groups(1, offset=0, limit=5)
    await repo(app).set_member(1, group.id, row.id, True)
    [ask_text] = await app.tap(opened, "Send to this group")
    [review] = await app.send("Hi {name}")
    # As after a restart: the list is read again from the group, which has not changed.
    app.dp["bulk_sources"].drop(1)
    [review] = await app.send("Hello {name}")
    assert "Hello Ali" in review.text
    # The group changes after the report, and the bot restarted meanwhile: no Start.
    app.dp["bulk_sources"].drop(1)
    await repo(app).rename(1, row.id, "Someone else")
    sent = await app.tap(review, "Start")
    assert any("The group changed or was deleted after the report" in m.text for m in sent)
    assert await app.state_of() is None
    assert ask_text.text


async def test_a_member_removed_after_the_report_gets_nothing(
    bulk_app: Harness, devsms: FakeDevsms
) -> None:
    # The group's list is still in memory (no restart): Start reads the group again anyway.
    app = bulk_app
    await connect(app)
    opened = await new_group(app, "VIP")
    ali, _ = await repo(app).add(1, "Ali", "998901234567", {}, limit=LIMIT)
    vali, _ = await repo(app).add(1, "Vali", "998901234568", {}, limit=LIMIT)
    [(group, _member)] = await repo(app).groups(1, offset=0, limit=5)
    for row in (ali, vali):
        await repo(app).set_member(1, group.id, row.id, True)
    await app.tap(opened, "Send to this group")
    [review] = await app.send("Hi {name}")
    await repo(app).set_member(1, group.id, vali.id, False)
    sent = await app.tap(review, "Start")
    assert any("The group changed or was deleted after the report" in m.text for m in sent)
    assert devsms.requests_to(SEND) == []


async def test_command_menu_and_help_list_contacts(app: Harness) -> None:
    assert ("contacts", "Contacts and groups") in COMMANDS
    menus = {lang: commands_for(app.services.i18n, lang) for lang in ("en", "ru", "uz")}
    described = {lang: {c.command: c.description for c in menu} for lang, menu in menus.items()}
    assert [d["contacts"] for d in described.values()] == [
        "Contacts and groups",
        "Контакты и группы",
        "Kontaktlar va guruhlar",
    ]
    [help_text] = await app.send("/help")
    assert "/contacts — your contacts and groups" in help_text.text


@pytest.mark.parametrize(
    ("lang", "title", "add"),
    [("ru", "Контакты", "Добавить"), ("uz", "Kontaktlar", "Qoʻshish")],
)
async def test_contacts_speak_uzbek_and_russian_from_the_menu_button(
    app: Harness, lang: str, title: str, add: str
) -> None:
    await connect(app, lang=lang)
    [menu] = await app.send("/start", lang=lang)
    button = f"📇 {title}"
    assert button in menu.reply_buttons()
    [book] = await app.send(button, lang=lang)
    assert f"<b>{title}</b>: 0" in book.text
    assert any(add in label for label in labels(book))


async def test_xlsx_import_and_a_card_of_the_widest_contact_fits_a_message(app: Harness) -> None:
    await connect(app)
    workbook = Workbook()
    sheet = workbook.active
    assert sheet is not None
    columns = [f"Column {i} " + "c" * 40 for i in range(40)]
    sheet.append(["Name", "Phone", *columns])
    sheet.append(["Ali " + "<&>" * 20, 998901234567, *(["v" * 200] * 40)])
    buffer = io.BytesIO()
    workbook.save(buffer)
    [book] = await app.send("/contacts")
    await app.tap(book, "Import")
    [summary] = await app.send_document("wide.xlsx", buffer.getvalue())
    assert "➕ Added: 1" in summary.text
    assert "1 contact would have more than 20 fields" in summary.text
    [row] = await repo(app).everyone(1)
    assert len(row.fields) == 20 and all(len(k) <= 32 for k in row.fields)
    # As wide as an import made a contact before imports were capped.
    wide = {c[:32]: "v" * 200 for c in columns}
    row, _ = await repo(app).add(1, row.name, row.phone, wide, limit=LIMIT)
    assert len(row.fields) == 40
    for i in range(2):
        group = await repo(app).create_group(1, f"Group {i}", limit=2)
        assert group is not None
        await repo(app).set_member(1, group.id, row.id, True)
    [book] = await app.send("/contacts")
    [card] = await app.tap(book, "Ali")  # under Telegram's rules: refused if over 4096
    assert "Groups: Group 0, Group 1" in card.text
    # Imported past the 20 fields one may type: removing one is still allowed.
    await app.tap(card, "Fields")
    [saved] = await app.send(f"{next(iter(row.fields))}:")
    assert "✅ Contact saved." in saved.text
    [after] = await repo(app).everyone(1)
    assert len(after.fields) == 39


async def test_things_gone_or_full_while_a_dialog_waits(app: Harness) -> None:
    await connect(app)
    for i in range(LIMIT - 1):
        await repo(app).add(1, f"P{i}", f"99890123456{i}", {}, limit=LIMIT)
    [book] = await app.send("/contacts")
    await app.tap(book, "Add")
    # The book fills up (another chat, an import) before the contact is typed.
    await repo(app).add(1, "Last", "998901234569", {}, limit=LIMIT)
    [full] = await app.send("Ali, 901234570")
    assert "You have 6 contacts, the most I keep." in full.text
    assert await app.state_of() is None and await repo(app).count(1) == LIMIT

    [book] = await app.send("/contacts")
    [card] = await app.tap(book, "Last")
    await app.tap(card, "Rename")
    last = await repo(app).by_phone(1, "998901234569")
    assert last is not None
    await repo(app).delete(1, last.id)
    [gone] = await app.send("New name")
    assert gone.text == "This contact no longer exists."
    assert await app.state_of() is None


async def test_ticks_without_groups_untick_and_a_forged_group(app: Harness) -> None:
    await connect(app)
    card = await add(app, "Ali, 901234567")
    [ticks] = await app.tap(card, "Groups")
    assert "You have no groups yet. Create one in 👥 Groups" in ticks.text
    assert labels(ticks) == ["⬅️ Back"]
    group = await repo(app).create_group(1, "VIP", limit=2)
    assert group is not None
    [card] = await app.tap(ticks, "Back")
    [ticks] = await app.tap(card, "Groups")
    [ticks] = await app.tap(ticks, "VIP")
    assert labels(ticks)[0] == "✅ VIP"
    [ticks] = await app.tap(ticks, "VIP")
    assert labels(ticks)[0] == "▫️ VIP"
    forged = button_data(ticks, "VIP").replace(f":{group.id}:", ":999:", 1)
    await app.tap_data(ticks, forged)
    assert app.answers()[-1].text == "This group no longer exists."
    assert await repo(app).groups_of(1, (await repo(app).everyone(1))[0].id) == []

    [book] = await app.send("/contacts")
    [groups] = await app.tap(book, "Groups")
    [opened] = await app.tap(groups, "VIP")
    [members] = await app.tap(opened, "Members")
    assert "The group «VIP» is empty" in members.text
    await repo(app).delete_group(1, group.id)
    [groups] = await app.tap(members, "Back")  # the group's button, the group gone
    assert app.answers()[-1].text == "This group no longer exists."
    assert "You have no groups yet" in groups.text


async def test_a_file_too_big_and_an_export_of_nothing(app: Harness) -> None:
    await connect(app)
    [book] = await app.send("/contacts")
    export = ContactCb(action=ContactAction.EXPORT).pack()  # an old button
    await app.tap_data(book, export)
    assert app.answers()[-1].text == "You have no contacts to export yet."
    await app.tap(book, "Import")
    [big] = await app.send_document("big.csv", b"phone\n901234567\n", file_size=30 * 2**20)
    assert "Telegram lets bots download files of at most 20 MB" in big.text
    assert await app.state_of() is not None  # still waiting for a file


async def test_a_group_set_aside_to_save_memory_is_read_again(
    bulk_app: Harness, devsms: FakeDevsms
) -> None:
    app = bulk_app
    await connect(app)
    app.dp["bulk_sources"] = cache = SourceCache(budget=1)
    row, _ = await repo(app).add(1, "Ali", "998901234567", {}, limit=LIMIT)
    group = await repo(app).create_group(1, "VIP", limit=2)
    assert group is not None
    await repo(app).set_member(1, group.id, row.id, True)
    [book] = await app.send("/contacts")
    [groups] = await app.tap(book, "Groups")
    [opened] = await app.tap(groups, "VIP")
    await app.tap(opened, "Send to this group")
    [review] = await app.send("Hi {name}")
    # Another user's list pushes this one out of memory: no file to send again for a group.
    other = group_source("Other", [Member("B", "998901234568", {})])
    cache.put(2, other)
    assert cache.used == other.approx_bytes  # user 1's list is out of memory
    sent = await app.tap(review, "Start")
    assert any("Bulk job #" in m.text for m in sent)
    async with asyncio.timeout(5):
        [sms] = await devsms.wait_sent(1)
    assert (sms.phone, sms.message) == ("998901234567", "Hi Ali")


async def test_a_group_send_leaves_out_numbers_on_the_stop_list(
    bulk_app: Harness, devsms: FakeDevsms
) -> None:
    app = bulk_app
    await connect(app)
    group = await repo(app).create_group(1, "VIP", limit=2)
    assert group is not None
    for name, phone in (("Ali", "998901234567"), ("Vali", "998901234568")):
        row, _ = await repo(app).add(1, name, phone, {}, limit=LIMIT)
        await repo(app).set_member(1, group.id, row.id, True)
    await app.services.stoplist.add(1, [("998901234568", None)], limit=10)
    [book] = await app.send("/contacts")
    [groups] = await app.tap(book, "Groups")
    [opened] = await app.tap(groups, "VIP")
    await app.tap(opened, "Send to this group")
    [review] = await app.send("Hi {name}")
    assert "✅ To send: 1" in review.text
    assert "⛔ 1 number on your stop list was left out." in review.text
    sent = await app.tap(review, "Start")
    assert any("Bulk job #" in m.text for m in sent)
    async with asyncio.timeout(5):
        [sms] = await devsms.wait_sent(1)
    assert (sms.phone, sms.message) == ("998901234567", "Hi Ali")
    deadline = asyncio.get_running_loop().time() + 5
    while (await app.services.bulk.jobs_of(1))[0].state != "done":
        assert asyncio.get_running_loop().time() < deadline, "the job did not finish"
        await asyncio.sleep(0.01)
    assert len(devsms.requests_to(SEND)) == 1  # the stopped number never reached the gateway
