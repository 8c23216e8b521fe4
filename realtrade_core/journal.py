"""The order journal: every live order and fill, recorded on disk as it happens.

A restart must not forget what the previous process sent. The broker writes an order row
*before* the order is sent (status ``submitting``), updates it as the exchange answers, and
records every fill once (the primary key is ``(symbol, trade_id)``; Binance trade ids are only
unique per symbol). On start, the live broker reconciles the journal's open orders with the
exchange's, fetches the fills it missed while it was down, and re-attaches its own open orders.

Storage is SQLite from the standard library in WAL mode (a crash never leaves a torn write, and
a reader, e.g. ``sqlite3 journal.sqlite3``, never blocks the writer). One connection is shared
by the threads of a process behind a lock. Money is stored as decimal *text*, exactly as the
exchange sent it. Nothing secret is ever written: no API key, secret or signature (reasons
are scrubbed before they are stored).

A journal belongs to one account: its ``meta`` table names the exchange, the venue and the
account (``account``: a fingerprint of the API key, see
:func:`~realtrade_core.credentials.fingerprint`). :meth:`Journal.claim_account` refuses another
account before any order is read, since reconciling one account's orders against another's
would mark them all rejected. The default file name carries the same fingerprint, so two
accounts get two journals without any part of a key on disk.

Order statuses are the values of :class:`~realtrade_core.events.OrderStatus` plus
``submitting`` (sent, no answer yet). A status never moves backwards: a late, stale answer
(a REST poll that saw ``new`` after the stream said ``filled``) cannot reopen an order.

Links tie orders together where the broker, not the exchange, keeps the rule: a bracket (its
parent, and children held until the parent fills, or a stop the broker watches) and an OCO
group. Each member has one row, keyed by its client order id (given before it is sent), with
what is needed to send it later and its state: ``held`` (waits for its parent), ``armed`` (a
stop the broker watches), ``triggered`` (its price was crossed; it goes once its sibling is
cancelled), ``sent`` (an order on the exchange, see ``orders``) or ``done``. A restart reads
the groups not yet done and carries on where the previous process stopped.
"""

from __future__ import annotations

import logging
import os
import re
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from decimal import Decimal
from pathlib import Path
from typing import Any

from .credentials import fingerprint, scrub
from .errors import ConfigurationError
from .events import Fill

log = logging.getLogger(__name__)

SCHEMA_VERSION = 2  # 2: the links table (created in older files on open)

SUBMITTING = "submitting"
OPEN_STATUSES = frozenset({SUBMITTING, "new", "partially_filled"})
FINAL_STATUSES = frozenset({"filled", "canceled", "rejected", "expired"})
_RANK = {SUBMITTING: 0, "new": 1, "partially_filled": 2, **{s: 3 for s in FINAL_STATUSES}}

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS orders (
    client_order_id TEXT PRIMARY KEY,
    order_id        TEXT,
    symbol          TEXT NOT NULL,
    side            TEXT NOT NULL,
    type            TEXT NOT NULL,
    amount          TEXT NOT NULL,
    price           TEXT,
    stop_price      TEXT,
    status          TEXT NOT NULL,
    filled          TEXT NOT NULL DEFAULT '0',
    average         TEXT,
    reason          TEXT,
    created_ms      INTEGER NOT NULL,
    updated_ms      INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS orders_by_status ON orders (status);
CREATE INDEX IF NOT EXISTS orders_by_order_id ON orders (order_id);
CREATE TABLE IF NOT EXISTS fills (
    symbol          TEXT NOT NULL,
    trade_id        TEXT NOT NULL,
    order_id        TEXT,
    client_order_id TEXT,
    side            TEXT NOT NULL,
    price           TEXT NOT NULL,
    amount          TEXT NOT NULL,
    fee             TEXT NOT NULL,
    fee_currency    TEXT,
    is_maker        INTEGER NOT NULL,
    time_ms         INTEGER NOT NULL,
    recorded_ms     INTEGER NOT NULL,
    source          TEXT NOT NULL,
    PRIMARY KEY (symbol, trade_id)
);
CREATE INDEX IF NOT EXISTS fills_by_order ON fills (order_id);
CREATE INDEX IF NOT EXISTS fills_by_time ON fills (symbol, time_ms);
CREATE TABLE IF NOT EXISTS links (
    client_order_id TEXT PRIMARY KEY,
    group_id        TEXT NOT NULL,
    kind            TEXT NOT NULL,
    symbol          TEXT NOT NULL,
    side            TEXT NOT NULL,
    type            TEXT NOT NULL,
    amount          TEXT,
    price           TEXT,
    stop_price      TEXT,
    state           TEXT NOT NULL,
    created_ms      INTEGER NOT NULL,
    updated_ms      INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS links_by_group ON links (group_id);
CREATE TABLE IF NOT EXISTS positions (
    symbol     TEXT PRIMARY KEY,
    size       TEXT NOT NULL,
    price      TEXT NOT NULL,
    updated_ms INTEGER NOT NULL
);
"""


def _now_ms() -> int:
    return int(time.time() * 1000)


def _text(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


def _dec(value: str | None) -> Decimal | None:
    return None if value is None else Decimal(value)


@dataclass(frozen=True, slots=True)
class JournalOrder:
    """One order as the journal knows it."""

    client_order_id: str
    order_id: str | None
    symbol: str
    side: str  # "buy" | "sell"
    type: str  # "market" | "limit" | "stop" | "stop_limit"
    amount: Decimal
    price: Decimal | None  # limit price
    stop_price: Decimal | None  # trigger price
    status: str  # "submitting" or an OrderStatus value
    filled: Decimal = Decimal(0)
    average: Decimal | None = None
    reason: str | None = None
    created_ms: int = 0
    updated_ms: int = 0

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES


@dataclass(frozen=True, slots=True)
class JournalFill:
    """One recorded fill; ``source`` says how it was learnt (``stream``, ``rest``, ``offline``...)."""

    symbol: str
    trade_id: str
    order_id: str | None
    client_order_id: str | None
    side: str
    price: Decimal
    amount: Decimal
    fee: Decimal
    fee_currency: str | None
    is_maker: bool
    time_ms: int
    recorded_ms: int
    source: str


LINK_KINDS = frozenset({"parent", "child", "oco"})
LINK_STATES = frozenset({"held", "armed", "triggered", "sent", "done"})


@dataclass(frozen=True, slots=True)
class JournalLink:
    """One member of a bracket or OCO group; see the module docstring."""

    client_order_id: str
    group_id: str  # a bracket's parent client order id; an OCO group's first member's
    kind: str  # "parent" | "child" | "oco"
    symbol: str
    side: str
    type: str  # as JournalOrder.type
    amount: Decimal | None  # None until known (a bracket child is sized by its parent's fill)
    price: Decimal | None
    stop_price: Decimal | None
    state: str
    created_ms: int = 0
    updated_ms: int = 0


def default_journal_path(exchange: str, venue: str, api_key: str | None) -> Path:
    """``$XDG_DATA_HOME/realtrade/<exchange>-<venue>-<key fingerprint>.sqlite3`` (``~/.local/share``
    when XDG_DATA_HOME is unset). The fingerprint is a SHA-256 hash of the API key (no character
    of the key itself); ``nokey`` without one.

    A journal left by an older version under the key's first 8 characters is renamed to this
    name (with its ``-wal``/``-shm`` files) when this name does not exist yet, so an upgrade
    keeps its orders.
    """
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    directory = Path(base) / "realtrade"
    path = directory / f"{_file_name(exchange, venue, fingerprint(api_key) or 'nokey')}.sqlite3"
    legacy_prefix = re.sub(r"[^A-Za-z0-9]", "", api_key or "")[:8]
    if legacy_prefix and not path.exists():
        legacy = directory / f"{_file_name(exchange, venue, legacy_prefix)}.sqlite3"
        if legacy.exists():
            for suffix in ("", "-wal", "-shm"):
                old = Path(f"{legacy}{suffix}")
                if old.exists():
                    old.rename(f"{path}{suffix}")
            log.info("order journal %s renamed to %s (file names no longer carry part of the key)", legacy, path)
    return path


def _file_name(exchange: str, venue: str, account: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", f"{exchange}-{venue}-{account}")


class Journal:
    """The SQLite order journal. Thread-safe; ``":memory:"`` keeps it in memory (tests, emulator).

    Open it with a path (created with its directories if missing); close it with :meth:`close`
    or use it as a context manager.
    """

    def __init__(self, path: str | os.PathLike[str] = ":memory:") -> None:
        self.path = str(path)
        if self.path != ":memory:":
            try:
                Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise ConfigurationError(
                    f"cannot create the order journal's directory for {self.path}: {exc}; "
                    f"pass journal=<a writable path> to the broker"
                ) from exc
        self._lock = threading.RLock()
        self._batch = False  # inside batch(): writes join its transaction
        try:
            # check_same_thread=False: the lock below serialises every use of the connection.
            self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=10.0)
            if self.path != ":memory:":
                mode = self._db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
                if str(mode).lower() != "wal":
                    log.warning("order journal %s: SQLite refused WAL mode (got %s)", self.path, mode)
                # WAL + NORMAL survives a process crash; a power loss may lose the last commits.
                self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(_SCHEMA)
            self._db.execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),)
            )
        except sqlite3.Error as exc:
            raise ConfigurationError(
                f"cannot open the order journal {self.path}: {exc}; pass journal=<a writable path> to the broker"
            ) from exc

    def __repr__(self) -> str:
        return f"<Journal {self.path}>"

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        with self._lock:
            try:
                self._db.close()
            except sqlite3.Error:  # closing twice, or a dead file: nothing left to save
                pass

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            if self._batch:  # part of the batch's transaction
                yield self._db
                return
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def written(self) -> None:
        """Return once no :meth:`batch` is under way on another thread, so what it records is
        on file: the order sender calls it before each request (an order is journaled before
        it is sent)."""
        with self._lock:
            pass

    @contextmanager
    def batch(self) -> Iterator[None]:
        """The writes made inside reach the file together or not at all: a fill's record and
        the ledger it moves are one commit, so a crash between them cannot leave the fill
        counted and the position not (a fill not recorded is found again at the restart). One
        commit is also cheaper than one per write. An exception inside keeps what was written,
        as separate writes would have, and goes on."""
        with self._lock:
            if self._batch:
                yield
                return
            self._db.execute("BEGIN IMMEDIATE")
            self._batch = True
            try:
                yield
            finally:
                self._batch = False
                self._db.execute("COMMIT")

    def _query(self, sql: str, args: tuple[Any, ...] = ()) -> list[tuple]:
        with self._lock:
            return self._db.execute(sql, args).fetchall()

    # --- meta ------------------------------------------------------------------------------------

    def get_meta(self, key: str) -> str | None:
        rows = self._query("SELECT value FROM meta WHERE key = ?", (key,))
        return rows[0][0] if rows else None

    def set_meta(self, key: str, value: str) -> None:
        with self._tx() as db:
            db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))

    def claim_account(self, account: str, *, rebind: bool = False) -> None:
        """Bind this journal to ``account`` (a key fingerprint or the exchange's account id).

        A new journal, or one written before journals named their account, is bound to the first
        account that opens it (the latter is logged). Another account raises ConfigurationError
        and changes nothing, unless ``rebind``: the user says it is the same account under a new
        API key (a rotated key), and the journal is bound to it (logged).
        """
        with self._tx() as db:
            row = db.execute("SELECT value FROM meta WHERE key = 'account'").fetchone()
            if row is None:
                db.execute("INSERT INTO meta (key, value) VALUES ('account', ?)", (account,))
                had_orders = db.execute("SELECT 1 FROM orders LIMIT 1").fetchone() is not None
            elif row[0] != account and rebind:
                db.execute("UPDATE meta SET value = ? WHERE key = 'account'", (account,))
                log.warning("order journal %s: bound to the API key with fingerprint %s instead of %s, as asked "
                            "(rebind_journal=True: the same account under a new key)",
                            self.path, account, row[0])  # fmt: skip
                return
            elif row[0] != account:
                raise ConfigurationError(
                    f"the order journal {self.path} belongs to another account (API key fingerprint {row[0]}), "
                    f"not this one ({account}): its orders are not this account's. Use that account's API key, "
                    f"or give this broker its own journal=<path>; if it is the same account under a new API key, "
                    f"pass rebind_journal=True"
                )
            else:
                return
        if had_orders:
            log.warning(
                "order journal %s named no account (written by an older version); it now belongs to the account "
                "with API key fingerprint %s, and other accounts will be refused",
                self.path,
                account,
            )

    # --- orders ----------------------------------------------------------------------------------

    def record_order(self, order: JournalOrder) -> None:
        """Insert a new order; raises ValueError if its client order id is already journaled."""
        now = _now_ms()
        try:
            with self._tx() as db:
                db.execute(
                    "INSERT INTO orders (client_order_id, order_id, symbol, side, type, amount, price, stop_price,"
                    " status, filled, average, reason, created_ms, updated_ms)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        order.client_order_id,
                        order.order_id,
                        order.symbol,
                        order.side,
                        order.type,
                        str(order.amount),
                        _text(order.price),
                        _text(order.stop_price),
                        order.status,
                        str(order.filled),
                        _text(order.average),
                        scrub(order.reason) if order.reason else order.reason,
                        order.created_ms or now,
                        order.updated_ms or now,
                    ),
                )
        except sqlite3.IntegrityError:
            raise ValueError(f"client order id {order.client_order_id!r} is already in the journal") from None

    def update_order(
        self,
        client_order_id: str,
        *,
        order_id: str | None = None,
        status: str | None = None,
        filled: Decimal | None = None,
        average: Decimal | None = None,
        reason: str | None = None,
    ) -> JournalOrder | None:
        """Merge what the exchange said into the order; returns the updated row (None if unknown).

        The status only moves forward (``submitting`` < ``new`` < ``partially_filled`` < final)
        and a final status is never replaced; ``filled`` only grows.
        """
        reason = scrub(reason) if reason else reason
        with self._tx() as db:
            row = db.execute("SELECT * FROM orders WHERE client_order_id = ?", (client_order_id,)).fetchone()
            if row is None:
                return None
            current = self._order(row)
            new_status = current.status
            if status is not None and current.status not in FINAL_STATUSES:
                if _RANK.get(status, 0) >= _RANK.get(current.status, 0):
                    new_status = status
            merged = replace(
                current,
                order_id=current.order_id if order_id is None else order_id,
                status=new_status,
                filled=current.filled if filled is None else max(current.filled, filled),
                average=current.average if average is None else _dec(_text(average)),
                reason=current.reason if reason is None else reason,
            )
            if merged == current:
                return current  # what the exchange said is known already: nothing to write
            merged = replace(merged, updated_ms=_now_ms())
            db.execute(
                "UPDATE orders SET order_id = ?, status = ?, filled = ?, average = ?, reason = ?, updated_ms = ?"
                " WHERE client_order_id = ?",
                (merged.order_id, merged.status, str(merged.filled), _text(merged.average), merged.reason,
                 merged.updated_ms, client_order_id),
            )  # fmt: skip
            return merged

    def get_order(self, client_order_id: str) -> JournalOrder | None:
        rows = self._query("SELECT * FROM orders WHERE client_order_id = ?", (client_order_id,))
        return self._order(rows[0]) if rows else None

    def find_order(self, order_id: str, symbol: str | None = None) -> JournalOrder | None:
        """The order with the exchange's ``order_id`` (optionally of ``symbol``)."""
        if symbol is None:
            rows = self._query("SELECT * FROM orders WHERE order_id = ?", (str(order_id),))
        else:
            rows = self._query("SELECT * FROM orders WHERE order_id = ? AND symbol = ?", (str(order_id), symbol))
        return self._order(rows[0]) if rows else None

    def open_orders(self, symbol: str | None = None) -> list[JournalOrder]:
        """Orders not known to be final (including ``submitting``), oldest first."""
        marks = ",".join("?" * len(OPEN_STATUSES))
        sql = f"SELECT * FROM orders WHERE status IN ({marks})"
        args: tuple[Any, ...] = tuple(sorted(OPEN_STATUSES))
        if symbol is not None:
            sql += " AND symbol = ?"
            args += (symbol,)
        return [self._order(r) for r in self._query(sql + " ORDER BY created_ms, rowid", args)]

    def orders(self, symbol: str | None = None) -> list[JournalOrder]:
        """Every order (optionally of one symbol), oldest first."""
        if symbol is None:
            rows = self._query("SELECT * FROM orders ORDER BY created_ms, rowid")
        else:
            rows = self._query("SELECT * FROM orders WHERE symbol = ? ORDER BY created_ms, rowid", (symbol,))
        return [self._order(r) for r in rows]

    @staticmethod
    def _order(row: tuple) -> JournalOrder:
        (cid, oid, symbol, side, type_, amount, price, stop, status, filled, average, reason, created, updated) = row
        return JournalOrder(
            client_order_id=cid,
            order_id=oid,
            symbol=symbol,
            side=side,
            type=type_,
            amount=Decimal(amount),
            price=_dec(price),
            stop_price=_dec(stop),
            status=status,
            filled=Decimal(filled),
            average=_dec(average),
            reason=reason,
            created_ms=created,
            updated_ms=updated,
        )

    # --- fills -----------------------------------------------------------------------------------

    def record_fill(self, fill: Fill, source: str = "stream") -> bool:
        """Record ``fill`` once; True if it is new, False if this trade id was already recorded.

        The caller applies a fill to its positions only when this returns True, which makes
        applying idempotent across the stream, REST polls and restarts.
        """
        with self._tx() as db:
            cursor = db.execute(
                "INSERT OR IGNORE INTO fills (symbol, trade_id, order_id, client_order_id, side, price, amount, fee,"
                " fee_currency, is_maker, time_ms, recorded_ms, source) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    fill.symbol,
                    str(fill.trade_id),
                    None if fill.order_id is None else str(fill.order_id),
                    fill.client_order_id,
                    getattr(fill.side, "value", fill.side),
                    str(fill.price),
                    str(fill.amount),
                    str(fill.fee),
                    fill.fee_currency,
                    int(bool(fill.is_maker)),
                    int(fill.time or 0),
                    _now_ms(),
                    source,
                ),
            )
            return cursor.rowcount == 1

    def has_fill(self, symbol: str, trade_id: str) -> bool:
        return bool(self._query("SELECT 1 FROM fills WHERE symbol = ? AND trade_id = ?", (symbol, str(trade_id))))

    def fills(
        self, symbol: str | None = None, *, order_id: str | None = None, client_order_id: str | None = None
    ) -> list[JournalFill]:
        """Recorded fills, oldest first, filtered by symbol, exchange order id or client order id."""
        clauses, args = [], []
        if symbol is not None:
            clauses.append("symbol = ?")
            args.append(symbol)
        if order_id is not None:
            clauses.append("order_id = ?")
            args.append(str(order_id))
        if client_order_id is not None:
            clauses.append("client_order_id = ?")
            args.append(client_order_id)
        where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
        rows = self._query(f"SELECT * FROM fills{where} ORDER BY time_ms, rowid", tuple(args))
        return [
            JournalFill(
                symbol=r[0],
                trade_id=r[1],
                order_id=r[2],
                client_order_id=r[3],
                side=r[4],
                price=Decimal(r[5]),
                amount=Decimal(r[6]),
                fee=Decimal(r[7]),
                fee_currency=r[8],
                is_maker=bool(r[9]),
                time_ms=r[10],
                recorded_ms=r[11],
                source=r[12],
            )
            for r in rows
        ]

    def last_fill_time(self, symbol: str) -> int | None:
        """Exchange time (ms) of the newest recorded fill of ``symbol``, None if there is none."""
        rows = self._query("SELECT MAX(time_ms) FROM fills WHERE symbol = ?", (symbol,))
        return rows[0][0] if rows and rows[0][0] is not None else None

    # --- positions -----------------------------------------------------------------------------

    # --- links (brackets and OCO groups) ---------------------------------------------------------

    def record_link(self, link: JournalLink) -> None:
        """Insert or replace one member of a group."""
        if link.kind not in LINK_KINDS or link.state not in LINK_STATES:
            raise ValueError(f"bad link kind/state {link.kind!r}/{link.state!r}")
        now = _now_ms()
        with self._tx() as db:
            db.execute(
                "INSERT OR REPLACE INTO links (client_order_id, group_id, kind, symbol, side, type, amount, price,"
                " stop_price, state, created_ms, updated_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (link.client_order_id, link.group_id, link.kind, link.symbol, link.side, link.type,
                 _text(link.amount), _text(link.price), _text(link.stop_price), link.state,
                 link.created_ms or now, now),
            )  # fmt: skip

    def update_link(self, client_order_id: str, *, state: str | None = None, amount: Decimal | None = None) -> None:
        """Change a member's state and/or amount; a member already ``done`` stays done."""
        if state is not None and state not in LINK_STATES:
            raise ValueError(f"bad link state {state!r}")
        with self._tx() as db:
            db.execute(
                "UPDATE links SET state = CASE WHEN state = 'done' THEN state ELSE COALESCE(?, state) END,"
                " amount = COALESCE(?, amount), updated_ms = ? WHERE client_order_id = ?",
                (state, _text(amount), _now_ms(), client_order_id),
            )

    def get_link(self, client_order_id: str) -> JournalLink | None:
        rows = self._query("SELECT * FROM links WHERE client_order_id = ?", (client_order_id,))
        return self._link(rows[0]) if rows else None

    def active_groups(self) -> dict[str, list[JournalLink]]:
        """Every group with a member not ``done``: group id -> members, oldest first."""
        rows = self._query(
            "SELECT * FROM links WHERE group_id IN (SELECT group_id FROM links WHERE state != 'done')"
            " ORDER BY created_ms, rowid"
        )
        groups: dict[str, list[JournalLink]] = {}
        for row in rows:
            link = self._link(row)
            groups.setdefault(link.group_id, []).append(link)
        return groups

    @staticmethod
    def _link(row: tuple) -> JournalLink:
        (cid, group, kind, symbol, side, type_, amount, price, stop, state, created, updated) = row
        return JournalLink(cid, group, kind, symbol, side, type_, _dec(amount), _dec(price), _dec(stop), state,
                           created, updated)  # fmt: skip

    def set_position(self, symbol: str, size: Decimal, price: Decimal) -> None:
        """Remember the position and its average entry price (what a restart starts from)."""
        with self._tx() as db:
            db.execute(
                "INSERT OR REPLACE INTO positions (symbol, size, price, updated_ms) VALUES (?, ?, ?, ?)",
                (symbol, str(size), str(price), _now_ms()),
            )

    def position(self, symbol: str) -> tuple[Decimal, Decimal] | None:
        """``(size, average price)`` last recorded for ``symbol``, or None."""
        rows = self._query("SELECT size, price FROM positions WHERE symbol = ?", (symbol,))
        return (Decimal(rows[0][0]), Decimal(rows[0][1])) if rows else None
