"""Secrets (I8): read from the environment and .env only, wrapped, and masked in every log line."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.config import ConfigError, load_secrets
from bot.config.secrets import SECRET_NAMES
from bot.logs import MASK, JsonFormatter, KeyValueFormatter, Redactor, setup_logging
from trading.logfmt import event

TOKEN = "123456:AAfake-telegram-token-Zq9"
OKX_SECRET = "sekrit-okx-9f8e7d6c5b4a"
OKX_KEY = "okx-key-0a1b2c3d4e5f"
PASSPHRASE = 'Pa"ss\\wörd-7c1e'  # quotes, a backslash and non-ASCII: escaping must not unmask it
HL_KEY = "0xdeadbeef" + "0123456789abcdef" * 3 + "cafebabe"


def write_env(path: Path, **values: str) -> Path:
    path.write_text("".join(f"{k}={v}\n" for k, v in values.items()), encoding="utf-8")
    return path


# --- loading ------------------------------------------------------------------------------------


def test_from_environment_only(tmp_path: Path) -> None:
    secrets = load_secrets(
        environ={
            "TELEGRAM_BOT_TOKEN": TOKEN,
            "OKX_API_SECRET": OKX_SECRET,
            "TELEGRAM_ALLOWED_USER_IDS": "42",
            "UNRELATED": "not-a-secret-of-ours",
        }
    )
    assert secrets.get("TELEGRAM_BOT_TOKEN") == TOKEN
    assert secrets.get("OKX_API_SECRET") == OKX_SECRET
    assert secrets.get("OKX_API_KEY") is None
    assert secrets.telegram_allowed_user_ids == frozenset({42})
    assert set(secrets.values) == {"TELEGRAM_BOT_TOKEN", "OKX_API_SECRET"}
    assert sorted(secrets.secret_strings()) == sorted([TOKEN, OKX_SECRET])


def test_from_dotenv_in_working_folder(tmp_path: Path) -> None:
    # the autouse fixture chdir'ed into tmp_path, so ./.env is this file
    write_env(
        tmp_path / ".env",
        OKX_API_KEY=OKX_KEY,
        OKX_API_SECRET=OKX_SECRET,
        HYPERLIQUID_PRIVATE_KEY=f"  {HL_KEY}  ",
        TELEGRAM_ALLOWED_USER_IDS="1, 2",
        SOMETHING_ELSE="ignored",
    )
    secrets = load_secrets(environ={})
    assert secrets.get("OKX_API_KEY") == OKX_KEY
    assert secrets.get("OKX_API_SECRET") == OKX_SECRET
    assert secrets.get("HYPERLIQUID_PRIVATE_KEY") == HL_KEY  # whitespace stripped
    assert secrets.telegram_allowed_user_ids == frozenset({1, 2})
    assert set(secrets.values) <= set(SECRET_NAMES)


def test_environment_wins_over_dotenv(tmp_path: Path) -> None:
    write_env(tmp_path / ".env", OKX_API_SECRET="from-dotenv-file", OKX_API_KEY=OKX_KEY)
    secrets = load_secrets(environ={"OKX_API_SECRET": OKX_SECRET})
    assert secrets.get("OKX_API_SECRET") == OKX_SECRET
    assert secrets.get("OKX_API_KEY") == OKX_KEY  # the rest still comes from the file


def test_explicit_env_file_and_variable(tmp_path: Path) -> None:
    write_env(tmp_path / ".env", OKX_API_KEY="from-default")
    other = write_env(tmp_path / "other.env", OKX_API_KEY="from-other")
    third = write_env(tmp_path / "third.env", OKX_API_KEY="from-third")
    assert load_secrets(other, environ={}).get("OKX_API_KEY") == "from-other"
    assert load_secrets(environ={"WARDEN_ENV_FILE": str(third)}).get("OKX_API_KEY") == (
        "from-third"
    )
    # the argument (--env-file) beats the variable
    assert load_secrets(other, environ={"WARDEN_ENV_FILE": str(third)}).get("OKX_API_KEY") == (
        "from-other"
    )


def test_default_dotenv_is_optional_but_a_named_one_is_not(tmp_path: Path) -> None:
    assert load_secrets(environ={}).values == {}
    with pytest.raises(ConfigError, match=r"secrets file .*missing\.env: not found"):
        load_secrets(tmp_path / "missing.env", environ={})
    with pytest.raises(ConfigError, match="not found"):
        load_secrets(environ={"WARDEN_ENV_FILE": str(tmp_path / "missing.env")})


def test_empty_values_count_as_unset(tmp_path: Path) -> None:
    write_env(tmp_path / ".env", OKX_API_KEY="", OKX_API_SECRET="   ")
    secrets = load_secrets(environ={"TELEGRAM_BOT_TOKEN": ""})
    assert secrets.values == {}
    assert secrets.secret_strings() == []


@pytest.mark.parametrize(
    ("raw", "ids"),
    [
        ("1, 2,3", {1, 2, 3}),
        ("  42  ", {42}),
        ("7,,8,", {7, 8}),
        ("", set()),
        ("5,5", {5}),
    ],
)
def test_allowed_user_ids_parse(raw: str, ids: set[int]) -> None:
    secrets = load_secrets(environ={"TELEGRAM_ALLOWED_USER_IDS": raw})
    assert secrets.telegram_allowed_user_ids == frozenset(ids)


def test_bad_allowed_user_id_names_the_variable_and_no_secret(tmp_path: Path) -> None:
    env = {
        "TELEGRAM_BOT_TOKEN": TOKEN,
        "OKX_API_SECRET": OKX_SECRET,
        "HYPERLIQUID_PRIVATE_KEY": HL_KEY,
        "TELEGRAM_ALLOWED_USER_IDS": "12,abc",
    }
    with pytest.raises(ConfigError) as info:
        load_secrets(environ=env)
    message = str(info.value)
    assert "TELEGRAM_ALLOWED_USER_IDS" in message
    assert "'abc'" in message
    for value in (TOKEN, OKX_SECRET, HL_KEY, "AAfake", "deadbeef"):
        assert value not in message


def test_bad_allowed_user_id_from_dotenv_names_the_file(tmp_path: Path) -> None:
    write_env(tmp_path / "x.env", TELEGRAM_ALLOWED_USER_IDS="1,two")
    with pytest.raises(ConfigError, match=r"TELEGRAM_ALLOWED_USER_IDS .*x\.env.*'two'"):
        load_secrets(tmp_path / "x.env", environ={})


def test_a_token_pasted_as_user_id_is_not_echoed(tmp_path: Path) -> None:
    # the bot token put on the wrong line of .env: the error must not print it
    write_env(tmp_path / ".env", TELEGRAM_BOT_TOKEN=TOKEN, TELEGRAM_ALLOWED_USER_IDS=f"7,{TOKEN}")
    with pytest.raises(ConfigError) as info:
        load_secrets(environ={})
    message = str(info.value)
    assert "TELEGRAM_ALLOWED_USER_IDS" in message
    assert "entry 2" in message
    assert TOKEN not in message and "AAfake" not in message
    # also when it is not configured as a secret anywhere: a long entry is never echoed
    with pytest.raises(ConfigError) as info:
        load_secrets(environ={"TELEGRAM_ALLOWED_USER_IDS": HL_KEY})
    assert HL_KEY not in str(info.value)


def test_secret_values_do_not_leak_through_repr(tmp_path: Path) -> None:
    secrets = load_secrets(
        environ={"OKX_API_SECRET": OKX_SECRET, "TELEGRAM_BOT_TOKEN": TOKEN, "OKX_API_KEY": OKX_KEY}
    )
    for text in (repr(secrets), str(secrets), repr(secrets.values), f"{secrets}"):
        assert OKX_SECRET not in text
        assert TOKEN not in text
        assert OKX_KEY not in text
    assert "**********" in repr(secrets.values["OKX_API_SECRET"])
    assert str(secrets.values["OKX_API_SECRET"]) == "**********"


# --- the redactor -------------------------------------------------------------------------------


def test_redactor_masks_inside_longer_text() -> None:
    redact = Redactor([OKX_SECRET, TOKEN])
    text = f"GET https://api/bot{TOKEN}/getMe failed; key={OKX_SECRET}&x={OKX_SECRET}!"
    out = redact(text)
    assert OKX_SECRET not in out and TOKEN not in out
    assert out == f"GET https://api/bot{MASK}/getMe failed; key={MASK}&x={MASK}!"


def test_redactor_masks_longest_first() -> None:
    # one secret is a prefix of another: the longer must be masked whole, whatever the order
    short, long = "abcd1234", "abcd1234-and-more"
    for order in ([short, long], [long, short]):
        redact = Redactor(order)
        assert redact(f"x {long} y {short} z") == f"x {MASK} y {MASK} z"
    redact = Redactor([short])
    redact.add([long])
    assert redact(long) == MASK


def test_redactor_ignores_empty_and_tiny_values() -> None:
    redact = Redactor(["", "ab"])
    assert redact("about a cab") == "about a cab"


# --- the formatters -----------------------------------------------------------------------------

SECRETS = [TOKEN, OKX_SECRET, PASSPHRASE, HL_KEY]


def _record(
    msg: str, fields: dict[str, object] | None = None, exc: bool = False
) -> logging.LogRecord:
    exc_info = None
    if exc:
        try:
            raise RuntimeError(f"exchange said: bad signature for {OKX_SECRET} / {PASSPHRASE}")
        except RuntimeError:
            exc_info = sys.exc_info()
    record = logging.LogRecord("warden.test", logging.ERROR, __file__, 1, msg, None, exc_info)
    record.fields = fields or {}
    return record


def _assert_clean(text: str) -> None:
    for secret in SECRETS:
        for form in (
            secret,
            json.dumps(secret)[1:-1],
            json.dumps(secret, ensure_ascii=False)[1:-1],
        ):
            assert form not in text, (secret, text)
    for fragment in ("AAfake", "9f8e7d6c", "wörd", "w\\u00f6rd", "deadbeef"):
        assert fragment not in text, (fragment, text)


@pytest.mark.parametrize("formatter_cls", [KeyValueFormatter, JsonFormatter])
def test_formatters_mask_message_fields_and_tracebacks(formatter_cls: type) -> None:
    formatter = formatter_cls(Redactor(SECRETS))
    record = _record(
        f"login with {TOKEN}",
        fields={
            "plain": OKX_SECRET,
            "spaced": f"key is {OKX_SECRET} ok",
            "passphrase": PASSPHRASE,
            "quoted": f"the passphrase {PASSPHRASE} here",
            "private": HL_KEY,
            "token": 7,
        },
        exc=True,
    )
    out = formatter.format(record)
    _assert_clean(out)
    assert out.count(MASK) >= 8
    assert "RuntimeError" in out and "Traceback" in out
    if formatter_cls is JsonFormatter:
        obj = json.loads(out)  # masking keeps the line valid JSON
        assert obj["plain"] == MASK
        assert obj["spaced"] == f"key is {MASK} ok"
        assert obj["quoted"] == f"the passphrase {MASK} here"
        assert obj["event"] == f"login with {MASK}"
        assert obj["token"] == 7
        assert MASK in obj["exc"]
    else:
        assert f"plain={MASK}" in out
        assert f'spaced="key is {MASK} ok"' in out
        assert f"passphrase={MASK}" in out
        assert "token=7" in out


@pytest.fixture
def root_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for h in list(root.handlers):
        root.removeHandler(h)
    for h in handlers:
        root.addHandler(h)
    root.setLevel(level)


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_setup_logging_masks_every_logger(
    root_logging: None, capsys: pytest.CaptureFixture[str], fmt: str
) -> None:
    setup_logging("DEBUG", fmt, SECRETS)
    log = logging.getLogger("warden.anything")
    event(log, "exchange.request", logging.DEBUG, url=f"https://x/{TOKEN}/send", key=OKX_SECRET)
    log.warning("passphrase was %s", PASSPHRASE)
    try:
        raise ValueError(HL_KEY)
    except ValueError:
        log.exception("signing failed")
    err = capsys.readouterr().err
    assert "exchange.request" in err and "signing failed" in err
    _assert_clean(err)
    assert err.count(MASK) >= 4
