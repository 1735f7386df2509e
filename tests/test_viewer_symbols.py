"""The Symbols page: most wanted modules, the stored symbol files, paging, the JSON twin.

Symbol files go in through the upload path (symbol_upload.accept_sym), the real fixture
files and small generated ones; the pruner's summary is written by hand with a
`missing_symbols` list.
"""

from __future__ import annotations

import datetime
import io
import types
from collections.abc import Iterator
from pathlib import Path

import pytest

from chalicelib import symbol_store, viewer
from chalicelib.symbol_store import SymbolStore
from chalicelib.symbol_upload import accept_sym
from chalicelib.viewer import symbols as symbols_module
from tests.testlib.viewing import LOGIN, Viewer, crash_store, logged_in, signature_summary

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "symbols" / "symbols"
MAC = FIXTURES / "crash-client" / "509C0610949836F7B70BD88BCF03E5400" / "crash-client.sym"
WIN = FIXTURES / "test_app.pdb" / "5A9832E5287241C1838ED98914E9B7FF1" / "test_app.sym"
HOSTILE = "<img_src=x_onerror=alert(1)>\"'&.so"
END = datetime.date(2026, 11, 26)


@pytest.fixture
def view(app_env, moto_backend) -> Iterator[Viewer]:
    with logged_in(app_env, moto_backend) as started:
        yield started


def store_of(view: Viewer) -> SymbolStore:
    backend = view.backend
    return SymbolStore(backend.client, backend.bucket, backend.prefix, 2.0)


def upload_fixtures(view: Viewer) -> None:
    """The Windows file first, so the Mac file is the newest."""
    for path in (WIN, MAC):
        with open(path, "rb") as sym:
            assert accept_sym(store_of(view), sym, "ci").stored


def small_sym(debug_file: str, n: int, os_name: str = "Linux", cpu: str = "x86_64") -> bytes:
    debug_id = f"{n:032X}0"
    return (f"MODULE {os_name} {cpu} {debug_id} {debug_file}\nFILE 0 a.c\n"
            f"FUNC 1000 10 0 f{n}\n1000 10 1 0\n").encode()


def put_small(view: Viewer, debug_file: str, n: int, uploader: str = "ci") -> str:
    accepted = accept_sym(store_of(view), io.BytesIO(small_sym(debug_file, n)), uploader)
    assert accepted.stored
    return accepted.debug_id


def put_wanted(view: Viewer, wanted: list) -> None:
    data = signature_summary(END, {})
    data["missing_symbols"] = wanted
    crash_store(view.backend).put_signature_summary(data)


def symbol_rows(soup) -> list[dict[str, str]]:
    return [{td["data-field"]: td.get_text(strip=True) for td in tr.select("td[data-field]")}
            for tr in soup.select("table.symbols tbody tr")]


def wanted_rows(soup) -> list[tuple[str, str, str]]:
    return [tuple(td.get_text(strip=True) for td in tr.select("td"))
            for tr in soup.select("table.wanted tbody tr")]


def older(soup) -> str | None:
    found = soup.select_one("nav.pages a[rel=next]")
    return found["href"] if found else None


def walk(view: Viewer, start: str = "/symbols") -> list[list[str]]:
    """The debug ids of every page, following the Older links."""
    pages, path = [], start
    while path:
        soup = view.page(path)
        pages.append([row["debug_id"] for row in symbol_rows(soup)])
        path = older(soup)
        assert len(pages) < 50
    return pages


@pytest.fixture
def frozen_clock(monkeypatch):
    """Uploads stamped at a time the test sets: `clock.now = datetime`."""

    class Frozen(datetime.datetime):
        now_value = datetime.datetime(2026, 11, 26, 12, 0, tzinfo=datetime.timezone.utc)

        @classmethod
        def now(cls, tz=None):
            return cls.now_value

    fake = types.SimpleNamespace(datetime=Frozen, timezone=datetime.timezone)
    monkeypatch.setattr(symbol_store, "datetime", fake)
    return Frozen


# -- the symbol files ----------------------------------------------------------------


def test_rows_show_each_stored_file_newest_first(view) -> None:
    start = datetime.datetime.now(datetime.UTC).replace(microsecond=0, tzinfo=None)
    upload_fixtures(view)
    end = datetime.datetime.now(datetime.UTC).replace(tzinfo=None)
    soup = view.page("/symbols")
    rows = symbol_rows(soup)
    for row in rows:
        assert start <= datetime.datetime.fromisoformat(row.pop("uploaded_at")) <= end
    assert rows == [
        {"debug_file": "crash-client", "debug_id": "509C0610949836F7B70BD88BCF03E5400",
         "os": "Mac", "cpu": "x86_64", "size": "4.0 MiB", "uploader": "ci",
         "download": ".sym"},
        {"debug_file": "test_app.pdb", "debug_id": "5A9832E5287241C1838ED98914E9B7FF1",
         "os": "windows", "cpu": "x86", "size": "799.0 KiB", "uploader": "ci",
         "download": ".sym"},
    ]
    assert older(soup) is None
    assert soup.select_one("header nav.site a[href='/symbols']").get_text() == "Symbols"


def test_the_download_link_serves_the_uploaded_file(view) -> None:
    upload_fixtures(view)
    soup = view.page("/symbols")
    links = [a["href"] for a in soup.select("table.symbols td[data-field=download] a")]
    assert links == [
        "/symbols/crash-client/509C0610949836F7B70BD88BCF03E5400/crash-client.sym",
        "/symbols/test_app.pdb/5A9832E5287241C1838ED98914E9B7FF1/test_app.sym",
    ]
    response = view.get(links[1])
    assert response.status_code == 200
    assert response.body == WIN.read_bytes()
    assert response.headers["Content-Disposition"] == 'attachment; filename="test_app.sym"'


def test_an_empty_store_says_how_to_upload(view) -> None:
    soup = view.page("/symbols")
    assert "No symbol files yet" in soup.select_one("#no-symbols").get_text()
    assert "No crash counts yet" in soup.select_one("#no-summary").get_text()
    howto = soup.select_one("#how-to-upload pre").get_text()
    assert howto.splitlines() == [
        "dump_syms ./myapp > myapp.sym",
        "symupload myapp.sym 'https://<collector>/symbols/upload?key=NAME:KEY'",
        "# or the sym-upload-v2 protocol:",
        "symupload -p sym-upload-v2 -k NAME:KEY myapp.sym https://<collector>/symbols",
    ]


def test_pages_of_two_follow_older_links_to_the_oldest(view, monkeypatch) -> None:
    monkeypatch.setattr(symbols_module, "UPLOADS_PER_PAGE", 2)
    ids = [put_small(view, f"lib{n}.so", n) for n in range(5)]
    pages = walk(view)
    assert pages == [ids[4:2:-1], ids[2:0:-1], ids[:1]]
    last = view.page(view.page("/symbols").select_one("nav.pages a[rel=next]")["href"])
    assert last.select_one("nav.pages a[rel=first]")["href"] == "/symbols"


def test_uploads_in_the_same_millisecond_are_neither_lost_nor_repeated(
    view, monkeypatch, frozen_clock
) -> None:
    monkeypatch.setattr(symbols_module, "UPLOADS_PER_PAGE", 2)
    frozen_clock.now_value = datetime.datetime(2026, 11, 26, 9, 0, tzinfo=datetime.UTC)
    early = [put_small(view, f"early{n}.so", n) for n in range(3)]
    frozen_clock.now_value = datetime.datetime(2026, 11, 26, 10, 0, tzinfo=datetime.UTC)
    late = [put_small(view, f"late{n}.so", 10 + n) for n in range(5)]
    pages = walk(view)
    assert [len(page) for page in pages] == [2, 2, 2, 2]
    seen = [debug_id for page in pages for debug_id in page]
    assert sorted(seen[:5]) == sorted(late) and sorted(seen[5:]) == sorted(early)
    # The cursor counts the rows of that millisecond already shown, across pages.
    second = older(view.page("/symbols"))
    millis = int(frozen_clock.now_value.timestamp() * 1000)
    assert second == f"/symbols?before={millis}-2"
    assert older(view.page(second)) == f"/symbols?before={millis}-4"


def test_a_cursor_past_the_oldest_upload_shows_an_empty_page(view) -> None:
    upload_fixtures(view)
    soup = view.page("/symbols?before=1-0")
    assert symbol_rows(soup) == []
    assert "No older symbol files" in soup.select_one("#no-older").get_text()
    assert soup.select_one("#no-older a")["href"] == "/symbols"
    data = view.api("/api/symbols?before=1-0")
    assert data["uploads"] == [] and data["links"]["older"] is None


@pytest.mark.parametrize("cursor", ["zz", "123", "-1-1", "1-x", "1" * 16 + "-1"])
def test_a_malformed_cursor_is_a_400(view, cursor: str) -> None:
    soup = view.page(f"/symbols?before={cursor}", status=400)
    assert "before must be" in soup.select_one("p.message").get_text()
    assert view.api(f"/api/symbols?before={cursor}", status=400)["status"] == 400


# -- most wanted -----------------------------------------------------------------------


def test_most_wanted_lists_the_summary_modules_first_on_the_page(view) -> None:
    put_wanted(view, [
        {"debug_file": "libc.so.6", "debug_id": "0F1E2D3C4B5A69788796A5B4C3D2E1F00",
         "reports": 1234},
        {"debug_file": "xul.pdb", "debug_id": "AB12CD34EF5600000000000000000000A",
         "reports": 7},
        "not a module", {"debug_file": 5, "debug_id": "X"},
    ])
    upload_fixtures(view)
    soup = view.page("/symbols")
    assert wanted_rows(soup) == [
        ("libc.so.6", "0F1E2D3C4B5A69788796A5B4C3D2E1F00", "1,234"),
        ("xul.pdb", "AB12CD34EF5600000000000000000000A", "7"),
    ]
    assert "as of 2026-11-26 14:00:00 UTC" in soup.select_one("#wanted-as-of").get_text()
    tables = [table["class"][0] for table in soup.select("main table")]
    assert tables == ["wanted", "symbols"]


def test_a_summary_with_nothing_missing_says_so(view) -> None:
    put_wanted(view, [])
    soup = view.page("/symbols")
    assert soup.select_one("table.wanted") is None
    assert "2026-11-26 14:00:00" in soup.select_one("#none-wanted").get_text()


# -- the JSON twin, escaping, login ------------------------------------------------------


def test_the_api_holds_the_dict_the_page_renders(view, monkeypatch) -> None:
    monkeypatch.setattr(symbols_module, "UPLOADS_PER_PAGE", 1)
    put_wanted(view, [{"debug_file": "libc.so.6",
                       "debug_id": "0F1E2D3C4B5A69788796A5B4C3D2E1F00", "reports": 3}])
    upload_fixtures(view)
    data = view.api("/api/symbols")
    expected = viewer.symbols_page(store_of(view), crash_store(view.backend), {},
                                   viewer.Urls(api=True))
    assert data == expected
    assert data["missing_symbols"] == [{"debug_file": "libc.so.6",
                                        "debug_id": "0F1E2D3C4B5A69788796A5B4C3D2E1F00",
                                        "reports": 3}]
    assert data["generated_at"] == "2026-11-26T14:00:00.000Z"
    (row,) = data["uploads"]
    assert row["debug_file"] == "crash-client" and row["size"] == 4171369
    assert row["url"] == "/symbols/crash-client/509C0610949836F7B70BD88BCF03E5400/crash-client.sym"
    assert data["links"]["self"] == "/api/symbols"
    assert data["links"]["alternate"] == "/symbols"
    assert data["links"]["older"].startswith("/api/symbols?before=")
    second = view.api(data["links"]["older"])
    assert [r["debug_file"] for r in second["uploads"]] == ["test_app.pdb"]
    assert second["links"]["older"] is None and second["newest_page"] is False


def test_hostile_debug_file_names_are_escaped(view) -> None:
    put_wanted(view, [{"debug_file": "<script>alert(1)</script>", "debug_id": "<b>",
                       "reports": 1}])
    debug_id = put_small(view, HOSTILE, 1, uploader="<i>ci</i>")
    response = view.get("/symbols")
    body = response.body.decode()
    assert "<script>alert" not in body and "<img_src" not in body and "<i>ci" not in body
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in body
    soup = view.page("/symbols")
    (row,) = symbol_rows(soup)
    assert row["debug_file"] == HOSTILE and row["uploader"] == "<i>ci</i>"
    href = soup.select_one("table.symbols td[data-field=download] a")["href"]
    quoted = "%3Cimg_src=x_onerror=alert(1)%3E%22'&.so"
    assert href == f"/symbols/{quoted}/{debug_id}/{quoted}.sym"


def test_a_debug_file_with_path_punctuation_downloads_by_its_link(view) -> None:
    debug_id = put_small(view, "libstdc++.so.6", 2)
    href = view.page("/symbols").select_one("table.symbols td[data-field=download] a")["href"]
    assert href == f"/symbols/libstdc++.so.6/{debug_id}/libstdc++.so.6.sym"
    assert view.get(href).body == small_sym("libstdc++.so.6", 2)


@pytest.mark.parametrize("path", ["/symbols", "/api/symbols"])
def test_without_the_login_the_page_is_401(view, path: str) -> None:
    upload_fixtures(view)
    response = view.client.http.get(path, headers={"Accept": LOGIN["Accept"]})
    assert response.status_code == 401
    assert b"crash-client" not in response.body


def test_a_page_lists_symbol_log_once_and_never_symbols(view, monkeypatch) -> None:
    import app as application

    monkeypatch.setattr(symbols_module, "UPLOADS_PER_PAGE", 2)
    for n in range(4):
        put_small(view, f"lib{n}.so", n)
    put_wanted(view, [])
    symbols, crashes = application.symbols(), application.crashes()
    listed: list[str] = []
    real = symbols.s3.list_objects_v2

    def listing(**kwargs):
        listed.append(kwargs["Prefix"][len(view.backend.prefix):])
        return real(**kwargs)

    monkeypatch.setattr(symbols.s3, "list_objects_v2", listing)

    def cost(path: str) -> tuple[dict, dict]:
        symbols.requests.clear()
        crashes.requests.clear()
        view.page(path)
        return dict(symbols.requests), dict(crashes.requests)

    assert cost("/symbols") == ({"ListObjectsV2": 1}, {"GetObject": 1})
    assert cost(older(view.page("/symbols"))) == ({"ListObjectsV2": 1}, {})  # summary cached
    assert listed == ["symbol-log/"] * 3
