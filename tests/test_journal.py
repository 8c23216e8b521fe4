"""The order journal: what it records, what it refuses, and that it survives a reopen."""

from __future__ import annotations

import re
import sqlite3
import subprocess
import sys
import textwrap
import threading
from decimal import Decimal

import pytest

from realtrade_core.events import Fill, Side
from realtrade_core.journal import Journal, JournalLink, JournalOrder, default_journal_path


def order(cid: str = "rt-1", **changes) -> JournalOrder:
    fields = dict(
        client_order_id=cid, order_id=None, symbol="BTC/USDT", side="buy", type="limit",
        amount=Decimal("0.01"), price=Decimal("60000.5"), stop_price=None, status="submitting",
        created_ms=1_700_000_000_000,
    )  # fmt: skip
    fields.update(changes)
    return JournalOrder(**fields)


def fill(trade_id: str = "1", cid: str | None = "rt-1", **changes) -> Fill:
    fields = dict(
        exchange="binance", trade_id=trade_id, order_id="42", client_order_id=cid, symbol="BTC/USDT",
        side=Side.BUY, price=Decimal("60000.5"), amount=Decimal("0.004"), fee=Decimal("0.000004"),
        fee_currency="BTC", is_maker=True, time=1_700_000_060_000,
    )  # fmt: skip
    fields.update(changes)
    return Fill(**fields)


@pytest.fixture
def journal(tmp_path):
    with Journal(tmp_path / "journal.sqlite3") as j:
        yield j


def test_an_order_is_recorded_with_exact_decimals_and_found_by_either_id(journal):
    journal.record_order(order())
    journal.update_order("rt-1", order_id="42", status="new")
    got = journal.get_order("rt-1")
    assert got.amount == Decimal("0.01") and got.price == Decimal("60000.5") and got.order_id == "42"
    assert journal.find_order("42") == got == journal.find_order("42", "BTC/USDT")
    assert journal.find_order("42", "ETH/USDT") is None
    assert journal.open_orders() == [got]


def test_a_client_order_id_is_recorded_once(journal):
    journal.record_order(order())
    with pytest.raises(ValueError, match="rt-1"):
        journal.record_order(order())


def test_status_never_moves_backwards_and_filled_only_grows(journal):
    journal.record_order(order())
    journal.update_order("rt-1", status="partially_filled", filled=Decimal("0.004"))
    journal.update_order("rt-1", status="new", filled=Decimal("0"))  # a stale REST answer
    got = journal.get_order("rt-1")
    assert (got.status, got.filled) == ("partially_filled", Decimal("0.004"))
    journal.update_order("rt-1", status="canceled", reason="user")
    journal.update_order("rt-1", status="filled")  # a final status is final
    got = journal.get_order("rt-1")
    assert got.status == "canceled" and got.reason == "user" and not got.is_open
    assert journal.open_orders() == []


def test_a_fill_is_recorded_once_per_symbol_and_trade_id(journal):
    assert journal.record_fill(fill("7"), source="stream") is True
    assert journal.record_fill(fill("7"), source="rest") is False
    assert journal.record_fill(fill("7", symbol="ETH/USDT")) is True  # Binance ids are per symbol
    (recorded,) = journal.fills("BTC/USDT")
    assert recorded.source == "stream" and recorded.fee == Decimal("0.000004") and recorded.fee_currency == "BTC"
    assert journal.has_fill("BTC/USDT", "7") and not journal.has_fill("BTC/USDT", "8")


def test_fills_are_found_by_order_and_the_last_fill_time_by_symbol(journal):
    journal.record_fill(fill("1", time=1000))
    journal.record_fill(fill("2", cid=None, order_id="43", time=3000))
    assert [f.trade_id for f in journal.fills(client_order_id="rt-1")] == ["1"]
    assert [f.trade_id for f in journal.fills(order_id="43")] == ["2"]
    assert journal.last_fill_time("BTC/USDT") == 3000
    assert journal.last_fill_time("ETH/USDT") is None


def test_everything_survives_closing_and_reopening_the_file(tmp_path):
    path = tmp_path / "nested" / "journal.sqlite3"  # directories are created
    with Journal(path) as journal:
        journal.record_order(order())
        journal.record_fill(fill("1"))
        journal.set_position("BTC/USDT", Decimal("0.003996"), Decimal("60000.5"))
    with Journal(path) as journal:
        assert journal.get_order("rt-1").status == "submitting"
        assert [f.trade_id for f in journal.fills()] == ["1"]
        assert journal.position("BTC/USDT") == (Decimal("0.003996"), Decimal("60000.5"))
        assert journal.position("ETH/USDT") is None


def test_the_file_is_in_wal_mode(journal):
    with sqlite3.connect(journal.path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0].lower() == "wal"


def test_concurrent_writers_lose_nothing(journal):
    def write(start: int) -> None:
        for i in range(start, start + 50):
            journal.record_fill(fill(str(i)))

    threads = [threading.Thread(target=write, args=(n * 50,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(journal.fills()) == 200


def test_default_path_is_under_the_data_dir_and_never_holds_the_secret(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    key = "AbCdEfGh12345678secretish"
    path = default_journal_path("binance", "testnet", key)
    assert path.parent == tmp_path / "realtrade"
    assert re.fullmatch(r"binance-testnet-[0-9a-f]{16}\.sqlite3", path.name)
    assert not any(key[i : i + 4] in path.as_posix() for i in range(len(key) - 3))  # no part of the key
    assert default_journal_path("binance", "testnet", key + "x") != path  # two keys, two journals
    monkeypatch.delenv("XDG_DATA_HOME")
    assert default_journal_path("bybit", "mainnet", None).name == "bybit-mainnet-nokey.sqlite3"
    assert ".local/share/realtrade" in default_journal_path("bybit", "mainnet", "k").as_posix()


def test_an_unwritable_location_is_a_configuration_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    from realtrade_core import ConfigurationError

    with pytest.raises(ConfigurationError, match="journal=<a writable path>"):
        Journal(blocker / "journal.sqlite3")


def link(cid: str, kind: str, state: str, group: str = "rt-p", **changes) -> JournalLink:
    fields = dict(
        client_order_id=cid, group_id=group, kind=kind, symbol="BTC/USDT", side="sell", type="stop",
        amount=None, price=None, stop_price=Decimal("59000"), state=state,
    )  # fmt: skip
    fields.update(changes)
    return JournalLink(**fields)


def test_links_keep_unfinished_groups_across_a_reopen_and_done_is_final(tmp_path):
    path = tmp_path / "journal.sqlite3"
    with Journal(path) as j:
        j.record_link(link("rt-p", "parent", "sent", side="buy", type="limit", price=Decimal("60000"), stop_price=None))
        j.record_link(link("rt-s", "child", "held"))
        j.record_link(link("rt-x", "oco", "sent", group="rt-x"))
        j.update_link("rt-x", state="done")
        j.update_link("rt-p", state="done")
        j.update_link("rt-s", state="armed", amount=Decimal("0.00999"))
    with Journal(path) as j:
        groups = j.active_groups()
        assert list(groups) == ["rt-p"]  # the OCO group is finished
        assert [(m.client_order_id, m.state) for m in groups["rt-p"]] == [("rt-p", "done"), ("rt-s", "armed")]
        assert groups["rt-p"][1].amount == Decimal("0.00999") and groups["rt-p"][1].stop_price == Decimal("59000")
        j.update_link("rt-p", state="sent")  # a stale update cannot reopen a finished member
        assert j.get_link("rt-p").state == "done"
        with pytest.raises(ValueError, match="bad link state"):
            j.update_link("rt-s", state="lost")


def test_a_journal_written_before_links_existed_gains_the_table_on_open(tmp_path):
    path = tmp_path / "old.sqlite3"
    db = sqlite3.connect(path)
    db.executescript("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);"
                     "INSERT INTO meta VALUES ('schema_version', '1');")  # fmt: skip
    db.close()
    with Journal(path) as j:
        assert j.active_groups() == {}
        assert j.get_meta("schema_version") == "2"


def test_a_batch_reaches_the_file_whole_and_only_when_it_ends(tmp_path):
    """A fill's record and the position it moves are one commit: another reader of the file
    sees neither until the batch ends, then both."""
    path = tmp_path / "journal.sqlite3"
    with Journal(path) as journal:
        reader = sqlite3.connect(path)
        with journal.batch():
            assert journal.record_fill(fill("7"))
            journal.set_position("BTC/USDT", Decimal("0.004"), Decimal("60000.5"))
            journal.update_order("rt-unknown", status="new")  # reads inside the batch work too
            assert reader.execute("SELECT COUNT(*) FROM fills").fetchone()[0] == 0
            assert reader.execute("SELECT COUNT(*) FROM positions").fetchone()[0] == 0
        assert reader.execute("SELECT trade_id FROM fills").fetchall() == [("7",)]
        assert reader.execute("SELECT size FROM positions").fetchall() == [("0.004",)]
        reader.close()


def test_a_process_that_dies_inside_a_batch_leaves_none_of_it(tmp_path):
    """Killed between a fill's record and its ledger update, the journal has neither: the fill
    is found again at the restart and applied once, instead of counted and never applied."""
    path = tmp_path / "journal.sqlite3"
    script = textwrap.dedent(
        f"""
        import os
        from decimal import Decimal
        from realtrade_core.events import Fill, Side
        from realtrade_core.journal import Journal

        journal = Journal({str(path)!r})
        journal.set_position("BTC/USDT", Decimal("0"), Decimal("0"))
        with journal.batch():
            journal.record_fill(Fill(exchange="binance", trade_id="9", order_id="42", client_order_id="rt-1",
                                     symbol="BTC/USDT", side=Side.BUY, price=Decimal("60000"), amount=Decimal("0.01"),
                                     fee=Decimal("0"), fee_currency="USDT", is_maker=False, time=1))
            journal.set_position("BTC/USDT", Decimal("0.01"), Decimal("60000"))
            os._exit(9)  # the process dies before the batch commits
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 9, done.stderr
    with Journal(path) as journal:
        assert not journal.has_fill("BTC/USDT", "9")
        assert journal.position("BTC/USDT") == (Decimal("0"), Decimal("0"))


def test_an_exception_inside_a_batch_keeps_what_was_written(journal):
    with pytest.raises(RuntimeError, match="the caller's own"), journal.batch():
        journal.record_order(order())
        with journal.batch():  # nested: one transaction
            journal.set_meta("valid.rt-1", "1.5")
        raise RuntimeError("the caller's own error")
    assert journal.get_order("rt-1") is not None and journal.get_meta("valid.rt-1") == "1.5"


def test_an_update_that_changes_nothing_writes_nothing(journal):
    journal.record_order(order())
    first = journal.update_order("rt-1", order_id="42", status="new", filled=Decimal("0"))
    again = journal.update_order("rt-1", order_id="42", status="new", filled=Decimal("0"))
    assert again == first  # the same row, updated_ms included: nothing was written
    later = journal.update_order("rt-1", status="filled", filled=Decimal("0.01"), average=Decimal("60000.5"))
    assert (later.status, later.filled, later.average, later.order_id) == ("filled", Decimal("0.01"),
                                                                           Decimal("60000.5"), "42")  # fmt: skip
    assert journal.get_order("rt-1") == later
