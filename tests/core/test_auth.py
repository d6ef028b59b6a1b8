import io
import json
from pathlib import Path

import pytest
import yaml

from core import auth
from core.auth import Authenticator, KeyEntry, hash_key, load_entries, new_key
from core.exceptions import Forbidden, RateLimited, Unauthorized
from core.ratelimit import RateLimiter

CATEGORIES = ("user_features", "credit_features")


def entry(name: str = "ranker", key: str = "k", **fields) -> dict:
    return {"name": name, "sha256": hash_key(key), "scopes": ["features:read"], **fields}


def write_file(tmp_path: Path, entries: object, suffix: str = ".json") -> Path:
    path = tmp_path / f"keys{suffix}"
    path.write_text(yaml.safe_dump(entries) if suffix != ".json" else json.dumps(entries))
    return path


class TestLoadEntries:
    @pytest.mark.parametrize("suffix", [".json", ".yaml", ".yml"])
    def test_json_and_yaml(self, tmp_path: Path, suffix: str) -> None:
        entries = load_entries(
            write_file(
                tmp_path,
                [entry(), entry("writer", "w", scopes=["features:write"], sources=["job"], categories=["*"])],
                suffix,
            )
        )
        assert [e.name for e in entries] == ["ranker", "writer"]
        assert entries[1].sources == ["job"]

    def test_digest_is_normalised_to_lower_case(self, tmp_path: Path) -> None:
        raw = entry()
        raw["sha256"] = raw["sha256"].upper()
        assert load_entries(write_file(tmp_path, [raw]))[0].sha256 == hash_key("k")

    @pytest.mark.parametrize(
        "entries",
        [
            [],
            {"name": "not a list"},
            [entry(key_plaintext="k")],
            [entry(sha256="abc")],
            [entry(scopes=[])],
            [entry(scopes=["features:delete"])],
            [entry(name="bad name")],
            [entry(scopes=["features:write"], categories=["*"])],
            [entry(scopes=["features:write"], sources=["job"])],
            [entry(), entry(key="other")],
            [entry("a"), entry("b")],
        ],
    )
    def test_bad_files_are_refused_with_the_file_named(self, tmp_path: Path, entries: object) -> None:
        path = write_file(tmp_path, entries)
        with pytest.raises(ValueError, match="API_KEYS_FILE") as caught:
            load_entries(path)
        assert hash_key("k") not in str(caught.value), "digests are not echoed"

    def test_missing_or_unparsable_file(self, tmp_path: Path) -> None:
        with pytest.raises(ValueError, match="cannot load"):
            load_entries(tmp_path / "absent.json")
        (tmp_path / "broken.json").write_text("[{")
        with pytest.raises(ValueError, match="cannot load"):
            load_entries(tmp_path / "broken.json")


class TestAuthenticator:
    @pytest.fixture
    def authenticator(self) -> Authenticator:
        entries = [
            KeyEntry(**entry("reader", "r-key")),
            KeyEntry(
                **entry(
                    "writer",
                    "w-key",
                    scopes=["features:write"],
                    sources=["job", "backfill"],
                    categories=["user_features"],
                )
            ),
            KeyEntry(**entry("any", "a-key", scopes=["features:write"], sources=["job"], categories=["*"])),
        ]
        return Authenticator(entries, CATEGORIES)

    def test_valid_key_gives_its_principal(self, authenticator: Authenticator) -> None:
        writer = authenticator.authenticate("w-key", "features:write")
        assert (writer.name, writer.sources) == ("writer", ("job", "backfill"))
        assert writer.may_write("user_features") and not writer.may_write("credit_features")
        assert authenticator.authenticate("a-key", "features:write").may_write("credit_features")

    @pytest.mark.parametrize("presented", [None, "", "r-key ", "R-KEY", "x" * 257])
    def test_anything_else_is_unauthorized(self, authenticator: Authenticator, presented: str | None) -> None:
        with pytest.raises(Unauthorized):
            authenticator.authenticate(presented, "features:read")

    def test_missing_scope_is_forbidden(self, authenticator: Authenticator) -> None:
        with pytest.raises(Forbidden):
            authenticator.authenticate("r-key", "features:write")

    def test_categories_must_be_allowed(self) -> None:
        bad = KeyEntry(**entry(scopes=["features:write"], sources=["job"], categories=["made_up"]))
        with pytest.raises(ValueError, match="made_up"):
            Authenticator([bad], CATEGORIES)

    def test_rate_limit_raises_with_retry_after(self) -> None:
        now = [0.0]
        limiter = RateLimiter(["reader"], rate=0.5, burst=1, clock=lambda: now[0])
        authenticator = Authenticator([KeyEntry(**entry("reader", "r-key"))], CATEGORIES, limiter)
        authenticator.authenticate("r-key", "features:read")
        with pytest.raises(RateLimited) as caught:
            authenticator.authenticate("r-key", "features:read")
        assert caught.value.retry_after == 2
        now[0] = 2.0
        authenticator.authenticate("r-key", "features:read")


class TestCli:
    def test_new_key_prints_a_key_and_a_matching_entry(self, tmp_path: Path, capsys) -> None:
        assert (
            auth.main(
                [
                    "new-key",
                    "--name",
                    "scorer",
                    "--scopes",
                    "features:read,features:write",
                    "--sources",
                    "prediction_service",
                ]
            )
            == 0
        )
        out, err = capsys.readouterr()
        key = err.rsplit(": ", 1)[1].strip()
        assert key.startswith("fs_") and len(key) > 40
        printed = json.loads(out)
        assert printed["sha256"] == hash_key(key) and key not in out
        assert printed["categories"] == ["*"]
        (tmp_path / "keys.json").write_text(json.dumps([printed]))
        assert load_entries(tmp_path / "keys.json")[0].name == "scorer"

    def test_new_key_yaml_entry_appends_to_a_yaml_file(self, tmp_path: Path, capsys) -> None:
        path = tmp_path / "keys.yaml"
        for name in ("a", "b"):
            auth.main(["new-key", "--name", name, "--scopes", "features:read", "--format", "yaml"])
            with path.open("a") as file:
                file.write(capsys.readouterr().out)
        assert [e.name for e in load_entries(path)] == ["a", "b"]

    def test_writer_without_sources_is_refused(self, capsys) -> None:
        with pytest.raises(SystemExit):
            auth.main(["new-key", "--name", "w", "--scopes", "features:write"])
        assert "sources" in capsys.readouterr().err

    def test_hash_reads_the_key_from_stdin(self, monkeypatch, capsys) -> None:
        key = new_key()
        monkeypatch.setattr("sys.stdin", io.StringIO(key + "\n"))
        auth.main(["hash"])
        assert capsys.readouterr().out.strip() == hash_key(key)
