"""The cached scan behind `realtrade exchanges`: used while nothing on sys.path changes, scanned
again when something does, and never wrong or failing because of its file."""

from __future__ import annotations

import importlib
import importlib.machinery  # imported before the tests narrow sys.path
import importlib.metadata
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from fakedist import make_dist

from realtrade_core import discovery
from realtrade_core.cli import main
from realtrade_core.cligroup import run
from realtrade_core.discovery import ENV_CACHE_DIR, Found
from realtrade_core.plugins import PluginHost, reset_plugin_host

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def site(tmp_path, monkeypatch):
    """sys.path is one fresh folder where tests 'install' distributions: nothing else on it can
    change (another test writing beside the repository) between two listings of a test."""
    folder = tmp_path / "site"
    folder.mkdir()
    monkeypatch.setattr(sys, "path", [str(folder)])
    return folder


@pytest.fixture
def environ(tmp_path):
    return {ENV_CACHE_DIR: str(tmp_path / "cache")}


def as_a_coarse_clock_leaves_it(folder: Path, before: os.stat_result) -> None:
    """Put the folder's time back: a change within one tick of a coarse clock leaves it alone.
    importlib.metadata keeps what it read of a folder by that time, in this process only (a new
    process reads afresh): its caches are cleared as a new process would find them."""
    os.utime(folder, ns=(before.st_atime_ns, before.st_mtime_ns))
    importlib.invalidate_caches()
    importlib.metadata.MetadataPathFinder().invalidate_caches()  # not a classmethod before 3.12


def acme(site: Path) -> None:
    make_dist(site, "acme-exchange", "1.0", {"acme": "acme_plugin"}, {})


def cache_path(environ) -> Path:
    return Path(discovery.cache_file(discovery.cache_key(discovery.EXCHANGE_GROUP), environ))


def test_the_second_listing_answers_from_the_cache_without_scanning(site, environ, monkeypatch):
    acme(site)
    first = discovery.installed(environ=environ)
    assert first == [Found("acme", "acme-exchange", "1.0", "acme_plugin")]
    assert cache_path(environ).is_file()

    def no_scan(**kwargs):
        raise AssertionError("scanned the installed distributions again")

    monkeypatch.setattr(importlib.metadata, "entry_points", no_scan)
    assert discovery.installed(environ=environ) == first


def test_a_distribution_installed_after_the_listing_is_seen(site, environ):
    acme(site)
    assert [f.name for f in discovery.installed(environ=environ)] == ["acme"]
    before = os.stat(site)
    make_dist(site, "zeta-exchange", "2.0", {"zeta": "zeta_plugin"}, {})
    as_a_coarse_clock_leaves_it(site, before)
    assert [f.name for f in discovery.installed(environ=environ)] == ["acme", "zeta"]


def test_a_distribution_removed_after_the_listing_is_gone(site, environ):
    acme(site)
    make_dist(site, "zeta-exchange", "2.0", {"zeta": "zeta_plugin"}, {})
    assert len(discovery.installed(environ=environ)) == 2
    before = os.stat(site)
    shutil.rmtree(site / "zeta_exchange-2.0.dist-info")
    as_a_coarse_clock_leaves_it(site, before)
    assert [f.name for f in discovery.installed(environ=environ)] == ["acme"]


def test_a_reinstall_of_the_same_version_with_other_entry_points_is_seen(site, environ):
    acme(site)
    assert [f.name for f in discovery.installed(environ=environ)] == ["acme"]
    before = os.stat(site)
    entry_points = site / "acme_exchange-1.0.dist-info" / "entry_points.txt"
    entry_points.write_text("[realtrade.exchanges]\nacme = acme_plugin\nacme2 = acme_plugin2\n")
    as_a_coarse_clock_leaves_it(site, before)
    assert [f.name for f in discovery.installed(environ=environ)] == ["acme", "acme2"]


@pytest.mark.parametrize(
    "content",
    [b"", b"\x00\xff not json", b"[]", b'{"key": null}', b'{"entries": []}', "truncated"],
    ids=["empty", "binary", "a list", "no key", "no entries' key", "truncated"],
)
def test_a_corrupt_cache_file_gives_the_right_answer_and_is_replaced(site, environ, content):
    acme(site)
    expected = discovery.installed(environ=environ)
    path = cache_path(environ)
    good = path.read_bytes()
    path.write_bytes(good[: len(good) // 2] if content == "truncated" else content)
    assert discovery.installed(environ=environ) == expected
    assert json.loads(path.read_bytes()) == json.loads(good)


def test_cache_entries_that_are_not_what_the_scan_writes_are_a_miss(site, environ):
    acme(site)
    expected = discovery.installed(environ=environ)
    path = cache_path(environ)
    data = json.loads(path.read_bytes())
    for entries in ([["acme", "acme-exchange", "1.0"]], [["acme", "acme-exchange", 1, "acme_plugin"]], {"a": 1}):
        path.write_text(json.dumps({**data, "entries": entries}))
        assert discovery.installed(environ=environ) == expected


def test_a_cache_that_cannot_be_written_still_answers(site, tmp_path):
    acme(site)
    blocker = tmp_path / "a file"
    blocker.write_text("")
    environ = {ENV_CACHE_DIR: str(blocker / "cache")}  # a folder under a file cannot be made
    assert [f.name for f in discovery.installed(environ=environ)] == ["acme"]
    assert [f.name for f in discovery.installed(environ=environ)] == ["acme"]
    assert sorted(tmp_path.iterdir()) == [blocker, site]


def test_the_cache_is_written_for_its_owner_only_and_leaves_no_temporary_file(site, environ):
    acme(site)
    discovery.installed(environ=environ)
    path = cache_path(environ)
    assert list(path.parent.iterdir()) == [path]
    assert path.stat().st_mode & 0o077 == 0 and path.parent.stat().st_mode & 0o077 == 0


def test_the_cache_folder_follows_the_environment():
    assert discovery.cache_dir({ENV_CACHE_DIR: "/x/rt", "XDG_CACHE_HOME": "/y"}) == "/x/rt"
    assert discovery.cache_dir({"XDG_CACHE_HOME": "/y", "HOME": "/h"}) == os.path.join("/y", "realtrade")
    assert discovery.cache_dir({"XDG_CACHE_HOME": "relative", "HOME": "/h"}) == os.path.join(
        "/h", ".cache", "realtrade"
    )
    assert discovery.cache_dir({"HOME": "/h"}) == os.path.join("/h", ".cache", "realtrade")


def test_the_cached_listing_is_the_hosts_listing_env_switches_and_duplicates_included(site, environ):
    acme(site)
    make_dist(site / "a", "first-dist", "1.0", {"dup": "dup_a"}, {})
    make_dist(site / "b", "second-dist", "2.0", {"dup": "dup_b"}, {})
    make_dist(site, "zeta-exchange", "1.0", {"Zeta": "zeta_plugin:Plugin"}, {})
    sys.path[:0] = [str(site / "a"), str(site / "b")]
    for switches in ({}, {"REALTRADE_DISABLE_EXCHANGES": "acme"}, {"REALTRADE_LOAD_EXCHANGES": "zeta,dup"}):
        env = {**environ, **switches}
        for _ in range(2):  # scanned, then from the cache
            cached = [tuple(row) for row in discovery.list_exchanges(env)]
            hosts = [
                (r.name, r.distribution, r.version, r.module, r.status, r.error)
                for r in PluginHost(environ=env).list_exchanges()
            ]
            assert cached == hosts
    statuses = {
        (r.name, r.status) for r in discovery.list_exchanges({**environ, "REALTRADE_DISABLE_EXCHANGES": "acme"})
    }
    assert statuses == {("acme", "disabled"), ("dup", "error"), ("zeta", "installed")}


@pytest.mark.parametrize("args", [["exchanges"], ["exchanges", "--json"]])
def test_the_listing_without_click_prints_what_the_click_command_prints(site, environ, monkeypatch, capsys, args):
    acme(site)
    make_dist(site / "a", "first-dist", "1.0", {"dup": "dup_a"}, {})
    make_dist(site / "b", "second-dist", "2.0", {"dup": "dup_b"}, {})
    sys.path[:0] = [str(site / "a"), str(site / "b")]
    for name, value in {**environ, "REALTRADE_DISABLE_EXCHANGES": "acme"}.items():
        monkeypatch.setenv(name, value)
    previous = reset_plugin_host(None)  # no host made yet, as in a new `realtrade` process
    try:
        assert main(args) == 0
        plain = capsys.readouterr()
        assert run(args) == 0
        through_click = capsys.readouterr()
    finally:
        reset_plugin_host(previous)
    assert plain.out == through_click.out and plain.err == through_click.err == ""
    assert "disabled by REALTRADE_DISABLE_EXCHANGES" in plain.out and "first-dist 1.0 and second-dist 2.0" in plain.out


def test_a_listing_that_is_not_plain_ascii_is_printed_by_click(site, environ, monkeypatch, capsys):
    make_dist(site, "acme-börse", "1.0", {"acme": "acme_plugin"}, {})
    monkeypatch.setenv(ENV_CACHE_DIR, environ[ENV_CACHE_DIR])
    previous = reset_plugin_host(None)
    try:
        assert main(["exchanges"]) == 0
        plain = capsys.readouterr().out
        assert run(["exchanges"]) == 0
        assert plain == capsys.readouterr().out and "acme-börse" in plain
    finally:
        reset_plugin_host(previous)


def listing(tmp_path: Path, *, env: dict[str, str] | None = None) -> tuple[str, dict[str, bool]]:
    """`realtrade exchanges` in a new interpreter that has only the standard library, the core and
    the fake distributions of ``tmp_path/site`` on sys.path (no site-packages: no click): what it
    printed and which of click and importlib.metadata it imported."""
    src = tmp_path / "src"
    if not src.exists():
        src.mkdir()
        (src / "realtrade_core").symlink_to(ROOT / "realtrade_core", target_is_directory=True)
    code = (
        "import sys\n"
        f"sys.path[:0] = [{str(src)!r}, {str(tmp_path / 'site')!r}]\n"
        "from realtrade_core.cli import main\n"
        "code = main(['exchanges'])\n"
        "print({m: m in sys.modules for m in ('click', 'importlib.metadata')})\n"
        "sys.exit(code)\n"
    )
    base = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "REALTRADE_"))}
    cwd = tmp_path / "cwd"
    cwd.mkdir(exist_ok=True)
    done = subprocess.run(
        [sys.executable, "-S", "-c", code],
        env={**base, ENV_CACHE_DIR: str(tmp_path / "cache"), **(env or {})},
        cwd=cwd, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    *out, imported = done.stdout.splitlines()
    return "\n".join(out), eval(imported)


def test_a_new_process_lists_from_the_cache_without_click_or_the_metadata_scan(tmp_path):
    acme(tmp_path / "site")
    first, imported = listing(tmp_path)
    assert "acme" in first and imported == {"click": False, "importlib.metadata": True}
    second, imported = listing(tmp_path)
    assert second == first and imported == {"click": False, "importlib.metadata": False}
    disabled, imported = listing(tmp_path, env={"REALTRADE_DISABLE_EXCHANGES": "acme"})
    assert "disabled" in disabled and imported == {"click": False, "importlib.metadata": False}
    make_dist(tmp_path / "site", "zeta-exchange", "1.0", {"zeta": "zeta_plugin"}, {})
    third, imported = listing(tmp_path)
    assert "zeta" in third and imported["importlib.metadata"]
