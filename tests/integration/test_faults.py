"""Faults (issue 8): the database going away answers 503 and recovers without a restart; a
locked or damaged store folder is a start-up error naming the folder."""

from __future__ import annotations

import socket
import threading
from pathlib import Path

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient
from sqlalchemy.engine import make_url

from kb.api.app import create_app
from kb.cli.main import main
from kb.db.engine import Database
from kb.retrieval.errors import StoreError, StoreLockedError
from kb.retrieval.settings import EmbedderSettings, Settings
from kb.retrieval.stores import open_store
from tests.integration._auth import app_client, bearer, make_user, product_settings

pytestmark = pytest.mark.integration


class Proxy:
    """A TCP proxy on loopback that can cut every connection and refuse new ones: a database
    server that goes away and comes back, as seen from the app."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.up = True
        self.conns: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if not self.up:
                client.close()
                continue
            upstream = socket.create_connection(self.target)
            self.conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def cut(self) -> None:
        self.up = False
        for s in self.conns:
            try:
                s.shutdown(socket.SHUT_RDWR)
                s.close()
            except OSError:
                pass
        self.conns.clear()

    def restore(self) -> None:
        self.up = True

    def close(self) -> None:
        self.cut()
        self.listener.close()


def test_database_outage_answers_503_and_recovers_without_restart(
    sample_kb, postgres_url, tmp_path
):
    kb, _, _ = sample_kb
    real = make_url(postgres_url)
    proxy = Proxy(real.host or "127.0.0.1", real.port or 5432)
    url = real.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    db = Database(url)
    db.migrate()
    token = make_user(url, tmp_path, "emp", "employee")
    settings = product_settings(kb.settings, url, data_dir=tmp_path)
    try:
        with app_client(kb, db, settings) as client:
            auth = bearer(token)
            ask = {"question": "How do I replace the toner?"}
            assert client.post("/api/ask", json=ask, headers=auth).status_code == 200
            proxy.cut()
            for path in ("/api/history", "/api/me"):
                down = client.get(path, headers=auth)
                assert down.status_code == 503, down.text
                assert down.json()["error_code"] == "DATABASE_UNAVAILABLE"
                assert "database is unavailable" in down.json()["detail"]
            down = client.post("/api/ask", json=ask, headers=auth)
            assert down.status_code == 503 and down.json()["error_code"] == "DATABASE_UNAVAILABLE"
            ready = client.get("/readyz")
            assert ready.status_code == 503 and ready.json()["error_code"] == "DATABASE_UNAVAILABLE"
            proxy.restore()
            assert client.post("/api/ask", json=ask, headers=auth).status_code == 200
            assert client.get("/api/history", headers=auth).status_code == 200
            assert client.get("/readyz").status_code == 200
    finally:
        db.dispose()
        proxy.close()


def _hash_settings(data_dir: Path) -> Settings:
    return Settings(data_dir=data_dir, embedder=EmbedderSettings(models=["hash"]))


def _make_store(settings: Settings) -> Path:
    store = open_store(settings)
    store.ensure_collection({"hash": 64})
    folder: Path = store.folder  # type: ignore[attr-defined]
    store.close()
    return folder


def test_a_locked_store_is_a_start_up_error_naming_the_folder(tmp_path):
    settings = _hash_settings(tmp_path)
    folder = _make_store(settings)
    held = open_store(settings)
    held.count()
    try:
        with pytest.raises(StoreLockedError, match=str(folder)), TestClient(create_app(settings)):
            pass
        result = CliRunner().invoke(
            main, ["serve", "--port", "8796"], env={"KB_DATA_DIR": str(tmp_path)}
        )
        assert result.exit_code == 1 and str(folder) in result.output
        assert "Traceback" not in result.output
    finally:
        held.close()


def test_a_damaged_store_is_a_start_up_error_naming_the_folder(tmp_path):
    settings = _hash_settings(tmp_path)
    folder = _make_store(settings)
    (folder / "edge_config.json").write_text("{ not json", encoding="utf-8")
    with pytest.raises(StoreError, match=str(folder)) as info, TestClient(create_app(settings)):
        pass
    assert "damaged" in info.value.detail
    result = CliRunner().invoke(
        main,
        ["serve", "--port", "8795"],
        env={"KB_DATA_DIR": str(tmp_path), "KB_EMBEDDER__MODELS": '["hash"]'},
    )
    assert result.exit_code == 1 and str(folder) in result.output
