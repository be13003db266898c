"""Config: the example loads; every bad key names itself, its file and line, and what is allowed."""
import pathlib
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pool.config import load_config, parse_config
from pool.tables import ConfigError

EXAMPLE = pathlib.Path(__file__).resolve().parents[2] / "deploy" / "pool.example.toml"


def test_example_config_loads():
    config = load_config(EXAMPLE)
    assert config.coin.name == "litecoin"
    assert [p.port for p in config.stratum.ports] == [3333, 3334]
    assert config.payout_script.startswith(b"\x00\x14")


def write(tmp_path, text: str) -> pathlib.Path:
    path = tmp_path / "pool.toml"
    path.write_text(text)
    return path


def example_with(old: str, new: str) -> str:
    text = EXAMPLE.read_text()
    assert old in text, old
    return text.replace(old, new, 1)


@pytest.mark.parametrize("old, new, key, message", [
    ('coin = "litecoin"', 'coin = "dogecoin"', "pool.coin", "unknown coin 'dogecoin'; known coins"),
    ('coin = "litecoin"', "coin = 5", "pool.coin", "must be a coin name"),
    ('address = "ltc1qw508d6qejxtdg4y5r3zarvary0c5xw7kgmn4n9"', 'address = "1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNa"',
     "pool.address", "not a Litecoin mainnet address: bech32 prefix ltc1 or base58 L/M/3 expected "
                     "(this is a Bitcoin mainnet address)"),
    ("node_id = 0", "node_id = 256", "pool.node_id", "must be in [0, 255]"),
    ("node_id = 0", "node_id = true", "pool.node_id", "must be a number"),
    ("extranonce2_size = 4", "extranonce2_size = 12", "pool.extranonce2_size", "must be in [4, 8]"),
    ('log_level = "info"', 'log_level = "loud"', "pool.log_level", "must be one of"),
    ('pool_tag = "/quarry/"', f'pool_tag = "{"x" * 61}"', "pool.pool_tag", "at most 60 bytes"),
    ("template_refresh_s = 30.0", "template_refresh_s = nan", "work.template_refresh_s", "finite"),
    ("template_refresh_s = 30.0", "template_refresh_s = inf", "work.template_refresh_s", "finite"),
    ("poll_interval_s = 0.5", "poll_interval_s = -1", "work.poll_interval_s", "must be in"),
    ("longpoll = true", 'longpoll = "yes"', "work.longpoll", "must be true or false"),
    ('notify_listen = "127.0.0.1:8081"', 'notify_listen = "0.0.0.0:8081"', "work.notify_listen", "loopback"),
    ('notify_secret = "change-me-to-a-long-random-string"', 'notify_secret = "short"', "work.notify_secret",
     "at least 16"),
    ("max_line_bytes = 16384", "max_line_bytes = 99999999999999999", "stratum.max_line_bytes", "must be in"),
    ("ban_invalid_ratio = 0.5", "ban_invalid_ratio = 1.5", "stratum.ban_invalid_ratio", "must be in [0, 1]"),
    ("max_requests_in_flight = 64", "max_requests_in_flight = 0", "stratum.max_requests_in_flight",
     "must be in [1, 4096]"),
    ("max_requests_in_flight = 64", "max_requests_in_flight = 1.5", "stratum.max_requests_in_flight",
     "must be a number"),
    ("port = 3333", "port = 70000", "stratum.ports[0].port", "must be in [0, 65535]"),
    ("port = 3334", "port = 3333", "stratum.ports", "same port"),
    ("max_difficulty = 4096", "max_difficulty = 0.5", "stratum.ports[0].max_difficulty", ">= min_difficulty"),
    ("difficulty = 16", "difficulty = 99999", "stratum.ports[0].difficulty", "within"),
    ("vardiff = true", "vardiff = 1", "stratum.ports[0].vardiff", "true or false"),
    ('url = "http://127.0.0.1:9332/"', 'url = "ftp://x"', "daemons[0].url", "http:// URL"),
    ("max_connections = 100000", "max_conections = 100000", "stratum.max_conections", "unknown key"),
    ("[work]", "[wrok]", "wrok", "unknown key"),
    ('scheme = "pplns"', 'scheme = "ppsx"', "payouts.scheme", "must be one of"),
    ('pool_fee_percent = "1"', 'pool_fee_percent = "101"', "payouts.pool_fee_percent", "between 0 and 100"),
    ('minimum_payout = "0.1"', 'minimum_payout = "0.000000001"', "payouts.minimum_payout", "fraction of a satoshi"),
    ('minimum_payout = "0.1"', 'minimum_payout = "0.000001"', "payouts.minimum_payout", "at least 0.00001"),
    ('minimum_payout = "0.1"', 'minimum_payout = "lots"', "payouts.minimum_payout", "amount of coins"),
    ('minimum_payout = "0.1"', "minimum_payout = nan", "payouts.minimum_payout", "finite"),
    ('tx_fee_paid_by = "pool"', 'tx_fee_paid_by = "nobody"', "payouts.tx_fee_paid_by", '"pool" or "miners"'),
    ("max_payees_per_tx = 500", "max_payees_per_tx = 0", "payouts.max_payees_per_tx", "must be in [1, 2000]"),
    ('max_tx_fee = "0.1"', "max_tx_fee = -1", "payouts.max_tx_fee", "at least"),
    ("payment_confirmations = 6", "payment_confirmations = 0", "payouts.payment_confirmations", "must be in"),
    ("conflict_confirmations = 10", "conflict_confirmations = 1.5", "payouts.conflict_confirmations",
     "must be a number"),
    ('wallet = ""', 'wallet = "../../etc"', "payouts.wallet", "0-64 of"),
    ('wallet_url = ""', 'wallet_url = "file:///etc/passwd"', "payouts.wallet_url", "http://"),
    ("shutdown_drain_s = 10.0", "shutdown_drain_s = -1", "blocks.shutdown_drain_s", "must be in [0, 3600]"),
    ("shutdown_drain_s = 10.0", 'shutdown_drain_s = "10"', "blocks.shutdown_drain_s", "must be a number"),
    ("late_submit_deadline_s = 10.0", "late_submit_deadline_s = inf", "blocks.late_submit_deadline_s", "finite"),
    ("trusted_networks = []", 'trusted_networks = ["127.0.0.1/8"]', "api.trusted_networks[0]",
     "'127.0.0.1/8' is not a network in CIDR notation: 127.0.0.1/8 has host bits set"),
    ("trusted_networks = []", 'trusted_networks = ["::1/128", "localhost"]', "api.trusted_networks[1]",
     "'localhost' is not a network in CIDR notation"),
    ("trusted_networks = []", 'trusted_networks = ["10.0.0.0/33"]', "api.trusted_networks[0]", "not a network"),
    ("trusted_networks = []", "trusted_networks = [5]", "api.trusted_networks[0]", 'such as "127.0.0.0/8"'),
    ("trusted_networks = []", 'trusted_networks = "127.0.0.0/8"', "api.trusted_networks", "must be a list"),
    ("trusted_networks = []", 'trusted_networks = ["10.0.0.0/8", "10.0.0.0/8"]', "api.trusted_networks[1]",
     "listed twice"),
    ("trusted_networks = []", 'trusted_networks = [{ network = "10.0.0.0/8", rate_limit_per_s = -1 }]',
     "api.trusted_networks[0].rate_limit_per_s", "must be in"),
    ("trusted_networks = []", 'trusted_networks = [{ network = "10.0.0.0/8", rate = 5 }]',
     "api.trusted_networks[0].rate", "unknown key"),
    ("trusted_networks = []", 'trusted_networks = [{ rate_limit_per_s = 5 }]', "api.trusted_networks[0].network",
     "is required"),
])
def test_bad_values_name_key_file_and_line(tmp_path, old, new, key, message):
    path = write(tmp_path, example_with(old, new))
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    text = str(caught.value)
    assert text.startswith(str(path)), text
    assert f" {key}: " in text, text
    assert message in text, text
    line = re.match(rf"{re.escape(str(path))}:(\d+): ", text)
    if line and "same port" not in message:
        lines = path.read_text().splitlines()
        assert key.rsplit(".", 1)[-1].split("[")[0] in lines[int(line.group(1)) - 1]


def test_trusted_networks_are_exempt_or_have_their_own_limit(tmp_path):
    config = load_config(write(tmp_path, example_with("trusted_networks = []", (
        'trusted_networks = ["127.0.0.0/8", "::1", '
        '{ network = "10.1.0.0/16", rate_limit_per_s = 200, rate_limit_burst = 400 }, '
        '{ network = "192.0.2.0/24" }]'))))
    networks = [(str(n.network), n.rate_limit_per_s, n.rate_limit_burst) for n in config.api.trusted_networks]
    assert networks == [("127.0.0.0/8", 0.0, None), ("::1/128", 0.0, None), ("10.1.0.0/16", 200.0, 400),
                        ("192.0.2.0/24", 0.0, None)]
    assert load_config(EXAMPLE).api.trusted_networks == ()


def test_missing_sections(tmp_path):
    with pytest.raises(ConfigError, match="pool: is required"):
        load_config(write(tmp_path, "[stratum]\n"))
    with pytest.raises(ConfigError, match="daemons: at least one"):
        parse_config({"pool": {"coin": "litecoin", "address": "ltc1qw508d6qejxtdg4y5r3zarvary0c5xw7kgmn4n9"},
                      "daemons": [], "stratum": {"ports": []}})


def test_unreadable_files(tmp_path):
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "missing.toml")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(write(tmp_path, "[pool\ncoin ="))
    bad = tmp_path / "binary.toml"
    bad.write_bytes(b"\xff\xfe\x00\x01")
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_config(bad)


TOML_VALUES = st.one_of(
    st.integers(-2**63, 2**63 - 1), st.floats(allow_nan=True, allow_infinity=True), st.booleans(),
    st.text(max_size=30), st.lists(st.integers(), max_size=3), st.dictionaries(st.text(max_size=5), st.integers(), max_size=2),
)


KNOWN_KEYS = ["coin", "address", "pool_tag", "node_id", "extranonce2_size", "log_level", "share_log", "url", "user",
              "password", "template_refresh_s", "poll_interval_s", "longpoll", "notify_listen", "notify_secret",
              "ntime_future_s", "ports", "max_line_bytes", "handshake_timeout_s", "idle_timeout_s", "max_connections",
              "max_connections_per_ip", "send_buffer_bytes", "ban_invalid_ratio", "ban_min_shares", "ban_duration_s",
              "max_bad_messages", "max_requests_in_flight", "get_transactions", "session_resume_s", "port", "host",
              "difficulty", "min_difficulty", "max_difficulty", "vardiff", "target_share_s", "retarget_s", "variance_pct", "name",
              "scheme", "pool_fee_percent", "fee_recipients", "pplns_factor", "interval_s", "enabled",
              "payments_enabled", "payment_interval_s", "minimum_payout", "tx_fee_paid_by", "max_payees_per_tx",
              "max_tx_fee", "payment_confirmations", "conflict_confirmations", "wallet", "wallet_url"]


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(["pool", "work", "stratum", "port", "daemon", "payouts"]),
       st.one_of(st.sampled_from(KNOWN_KEYS), st.text(min_size=1, max_size=25)), TOML_VALUES)
def test_any_value_anywhere_is_a_config_error_or_accepted(section, key, value):
    data = {
        "pool": {"coin": "litecoin", "address": "ltc1qw508d6qejxtdg4y5r3zarvary0c5xw7kgmn4n9"},
        "daemons": [{"url": "http://127.0.0.1:9332/"}],
        "stratum": {"ports": [{"port": 3333}]},
        "work": {},
        "payouts": {},
    }
    target = {"pool": data["pool"], "work": data["work"], "stratum": data["stratum"], "payouts": data["payouts"],
              "port": data["stratum"]["ports"][0], "daemon": data["daemons"][0]}[section]
    target[key] = value
    try:
        parse_config(data)
    except ConfigError:
        pass


def test_database_redis_blocks_sections(tmp_path):
    config = load_config(EXAMPLE)
    assert config.database.dsn.startswith("postgresql://") and config.database.flush_interval_s == 1.0
    assert config.redis.url == "" and config.maturity == 100
    assert config.blocks.shutdown_drain_s == 10.0 and config.blocks.late_submit_deadline_s == 10.0
    text = example_with('url = ""', 'url = "redis://127.0.0.1:6379/0"')
    text = text.replace("confirmations = 0\n", "confirmations = 120\n", 1)
    config = load_config(write(tmp_path, text))
    assert config.redis.url == "redis://127.0.0.1:6379/0" and config.maturity == 120
    with pytest.raises(ConfigError, match="blocks.confirmations: must be at least the coin's maturity"):
        load_config(write(tmp_path, EXAMPLE.read_text().replace("confirmations = 0\n", "confirmations = 50\n", 1)))
    with pytest.raises(ConfigError, match="database.dsn"):
        load_config(write(tmp_path, example_with('dsn = "postgresql://', 'dsn = "mysql://')))


def test_payouts_section(tmp_path):
    config = load_config(EXAMPLE)
    payouts = config.payouts
    assert (payouts.scheme, payouts.minimum_payout, payouts.max_tx_fee) == ("pplns", 10_000_000, 10_000_000)
    assert isinstance(payouts.minimum_payout, int) and payouts.tx_fee_paid_by == "pool"
    text = example_with('minimum_payout = "0.1"', "minimum_payout = 0.00012345")
    assert load_config(write(tmp_path, text)).payouts.minimum_payout == 12_345  # the spelling, not a float


def test_api_section(tmp_path):
    config = load_config(EXAMPLE)
    assert config.api.enabled and config.api.port == 8080 and config.api.cors_origins == ()
    assert config.api.metrics_listen == "127.0.0.1:9108" and config.api.rate_limit_per_s == 20.0
    assert not parse_config({**_minimal(), "api": {}}).api.enabled  # off unless asked for
    config = load_config(write(tmp_path, example_with("cors_origins = []",
                                                      'cors_origins = ["https://a.example:8443", "*"]')))
    assert config.api.cors_origins == ("https://a.example:8443", "*")


def _minimal() -> dict:
    return {"pool": {"coin": "litecoin", "address": "ltc1qw508d6qejxtdg4y5r3zarvary0c5xw7kgmn4n9"},
            "daemons": [{"url": "http://127.0.0.1:9332/"}], "stratum": {"ports": [{"port": 3333}]}}


@pytest.mark.parametrize("old, new, key, message", [
    ("cors_origins = []", 'cors_origins = ["evil.example"]', "api.cors_origins", "an origin such as"),
    ("cors_origins = []", 'cors_origins = "*"', "api.cors_origins", "must be a list"),
    ("rate_limit_per_s = 20.0", "rate_limit_per_s = -1", "api.rate_limit_per_s", "must be in"),
    ("rate_limit_burst = 40", "rate_limit_burst = 0", "api.rate_limit_burst", "must be in"),
    ('metrics_listen = "127.0.0.1:9108"', 'metrics_listen = "9108"', "api.metrics_listen", "HOST:PORT"),
    ('metrics_listen = "127.0.0.1:9108"', 'metrics_listen = "x:99999"', "api.metrics_listen", "HOST:PORT"),
    ("trust_forwarded_for = false", 'trust_forwarded_for = "no"', "api.trust_forwarded_for", "true or false"),
    ("cache_s = 10.0", "cache_s = 1e9", "api.cache_s", "must be in"),
    ("workers = 1", "workers = 0", "api.workers", "must be in"),
    ("workers = 1", "workers = 2.5", "api.workers", "must be a number in [1, 64]"),
])
def test_bad_api_values_name_key_file_and_line(tmp_path, old, new, key, message):
    path = write(tmp_path, example_with(old, new))
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    text = str(caught.value)
    assert text.startswith(f"{path}:") and f" {key}: " in text and message in text, text
