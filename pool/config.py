"""The pool's configuration: one TOML file, read once and validated at start-up.

A bad key names itself, its file and line, and what is allowed; an unknown key is an
error (a typo must not silently fall back to a default).  ``deploy/pool.example.toml``
documents every key.
"""

from __future__ import annotations

import ipaddress
import re
import tomllib
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import NamedTuple

from pool.families import Coin, CoinFamily, FamilyError, UnknownCoin, find_coin
from pool.tables import ConfigError, TableReader

#: `pool run` hands the API process its database DSN here (not on the command line, where `ps` shows it).
API_DSN_ENV = "QUARRY_API_DSN"


@dataclass(frozen=True)
class DaemonConfig:
    url: str
    user: str | None = None
    password: str | None = None


@dataclass(frozen=True)
class PortConfig:
    port: int
    host: str = "0.0.0.0"
    difficulty: float = 0.0  # 0: the minimum
    min_difficulty: float = 0.001
    max_difficulty: float = 1e15
    vardiff: bool = True
    target_share_s: float = 15.0
    retarget_s: float = 90.0
    variance_pct: float = 30.0
    name: str = ""

    @property
    def initial_difficulty(self) -> float:
        return self.difficulty or self.min_difficulty


@dataclass(frozen=True)
class StratumConfig:
    ports: tuple[PortConfig, ...]
    max_line_bytes: int = 16_384
    handshake_timeout_s: float = 30.0
    idle_timeout_s: float = 900.0
    max_connections: int = 100_000
    max_connections_per_ip: int = 1_000
    send_buffer_bytes: int = 1 << 20
    ban_invalid_ratio: float = 0.5
    ban_min_shares: int = 50
    ban_duration_s: float = 600.0
    max_bad_messages: int = 10
    max_requests_in_flight: int = 64
    get_transactions: bool = False
    session_resume_s: float = 600.0


@dataclass(frozen=True)
class WorkConfig:
    template_refresh_s: float = 30.0
    poll_interval_s: float = 0.5
    longpoll: bool = True
    notify_listen: str = ""  # "127.0.0.1:PORT" for the -blocknotify HTTP hook, "" = off
    notify_secret: str = ""
    ntime_future_s: int = 600


@dataclass(frozen=True)
class DatabaseConfig:
    dsn: str = ""  # "" = an embedded PostgreSQL in <data_dir>/postgres
    flush_interval_s: float = 1.0
    batch_size: int = 5000
    write_timeout_s: float = 10.0
    share_retention_days: int = 90


@dataclass(frozen=True)
class RedisConfig:
    url: str = ""  # "" = statistics in-process (one node only)


@dataclass(frozen=True)
class BlocksConfig:
    confirmations: int = 0  # 0 = the coin's coinbase maturity; never lower than it
    orphan_confirmations: int = 10
    tracker_interval_s: float = 30.0
    late_submit_deadline_s: float = 10.0  # a candidate of a decided height: sent only this soon after found
    shutdown_drain_s: float = 10.0  # at most this long finishing block submissions on SIGTERM


@dataclass(frozen=True)
class PayoutsConfig:
    scheme: str = "pplns"  # pplns, prop, solo, pps, fpps
    pool_fee_percent: str = "1"
    fee_recipients: tuple[tuple[str, str], ...] = ()
    pplns_factor: str = "2"
    interval_s: float = 60.0
    enabled: bool = True
    pps_settle_s: float = 600.0               # PPS/FPPS: shares are credited once this old
    # Payments through the daemon wallet (payouts/payments.py).
    payments_enabled: bool = True
    payment_interval_s: float = 600.0
    minimum_payout: int = 10_000_000          # satoshis (from a decimal amount of coins in the file)
    tx_fee_paid_by: str = "pool"              # "pool" or "miners" (split equally over the outputs)
    max_payees_per_tx: int = 500
    max_tx_fee: int = 10_000_000              # satoshis: a funded transaction paying more is not sent
    payment_confirmations: int = 6
    conflict_confirmations: int = 10
    wallet: str = ""                          # wallet name ("" = the daemon's default wallet)
    wallet_url: str = ""                      # "" = the first daemon's URL


class TrustedNetwork(NamedTuple):  # its IPs' own API limit (rate 0: none; burst None: api.rate_limit_burst)
    network: ipaddress.IPv4Network | ipaddress.IPv6Network
    rate_limit_per_s: float = 0.0
    rate_limit_burst: int | None = None


@dataclass(frozen=True)
class ApiConfig:
    enabled: bool = False  # `pool run` starts the API in a process of its own
    host: str = "127.0.0.1"
    port: int = 8080
    cors_origins: tuple[str, ...] = ()  # origins allowed to read the API from a browser; "*" = any
    rate_limit_per_s: float = 20.0  # requests per second per client IP (0 = no limit)
    rate_limit_burst: int = 40
    trust_forwarded_for: bool = False  # behind a reverse proxy: the client is X-Forwarded-For's last hop
    trusted_networks: tuple[TrustedNetwork, ...] = ()  # networks with their own limit (or none)
    cache_s: float = 10.0  # pool-wide figures (hashrate, top miners) are recomputed at most this often
    metrics_listen: str = ""  # HOST:PORT of the pool process's own /metrics ("" = off)
    workers: int = 1  # API processes sharing the listening socket (one core each, at most)


@dataclass(frozen=True)
class PoolConfig:
    family: CoinFamily  # the coin's family: everything coin-specific goes through it
    coin: Coin
    address: str
    payout_script: bytes
    daemons: tuple[DaemonConfig, ...]
    stratum: StratumConfig
    work: WorkConfig = field(default_factory=WorkConfig)
    pool_tag: str = "/quarry/"
    node_id: int = 0
    extranonce2_size: int = 4
    log_level: str = "INFO"
    share_log: str = ""  # a file to append every accepted share and block to, "" = log only
    name: str = ""  # the pool's name in the database and the API (default: the coin's name)
    data_dir: str = "quarry-data"  # spill files and the embedded PostgreSQL
    database: DatabaseConfig = field(default_factory=DatabaseConfig)
    redis: RedisConfig = field(default_factory=RedisConfig)
    blocks: BlocksConfig = field(default_factory=BlocksConfig)
    payouts: PayoutsConfig = field(default_factory=PayoutsConfig)
    api: ApiConfig = field(default_factory=ApiConfig)
    source: str = "<dict>"

    @property
    def pool_name(self) -> str:
        return self.name or self.coin.name

    @property
    def maturity(self) -> int:
        return max(self.blocks.confirmations, self.coin.coinbase_maturity)


# -- reading -------------------------------------------------------------------------------


def load_config(path: str | Path) -> PoolConfig:
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    return parse_config(data, source=str(path), text=text)


def parse_config(data: dict, *, source: str = "<dict>", text: str = "") -> PoolConfig:
    root = TableReader(data, "", source, text)
    pool = TableReader(root.get("pool", dict), "pool", source, text)
    coin_name = pool.get("coin", str, allowed="a coin name such as 'litecoin'")
    try:
        family, coin = find_coin(coin_name)
    except UnknownCoin as exc:
        raise pool.error("pool.coin", str(exc)) from None
    address = pool.get("address", str, allowed="the pool's payout address")
    try:
        payout_script = family.payout_script(coin, address)
    except FamilyError as exc:
        raise pool.error("pool.address", str(exc)) from None
    pool_tag = pool.get("pool_tag", str, "/quarry/")
    if len(pool_tag.encode()) > 60:
        raise pool.error("pool.pool_tag", "must be at most 60 bytes")
    node_id = pool.number("node_id", 0, 0, 255, integer=True)
    extranonce2_size = pool.number(
        "extranonce2_size", 4, *family.extranonce2_sizes, integer=True
    )
    log_level = pool.get("log_level", str, "INFO").upper()
    if log_level not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        raise pool.error("pool.log_level", "must be one of debug, info, warning, error")
    share_log = pool.get("share_log", str, "")
    name = pool.get("name", str, "")
    if name and not re.fullmatch(r"[a-z0-9][a-z0-9_-]{0,31}", name):
        raise pool.error("pool.name", "must be 1-32 of a-z 0-9 _ - (it names the pool in the database and the API)")
    data_dir = pool.get("data_dir", str, "quarry-data")
    pool.finish()

    daemons_raw = root.get("daemons", list, allowed="a list of [[daemons]] tables")
    if not daemons_raw:
        raise root.error("daemons", "at least one [[daemons]] entry is required")
    daemons = []
    for index, entry in enumerate(daemons_raw):
        reader = TableReader(entry, f"daemons[{index}]", source, text)
        url = reader.get("url", str, allowed="an http:// URL")
        if not re.fullmatch(r"https?://[^\s/]+(/.*)?", url):
            raise reader.error(f"daemons[{index}].url", f"must be an http:// URL, not {url!r}")
        daemons.append(DaemonConfig(url, reader.get("user", str, None), reader.get("password", str, None)))
        reader.finish()

    stratum = _read_stratum(TableReader(root.get("stratum", dict), "stratum", source, text), source, text)
    work = _read_work(TableReader(root.get("work", dict, {}), "work", source, text))
    database = _read_database(TableReader(root.get("database", dict, {}), "database", source, text))
    redis = _read_redis(TableReader(root.get("redis", dict, {}), "redis", source, text))
    blocks = _read_blocks(TableReader(root.get("blocks", dict, {}), "blocks", source, text), coin)
    payouts = _read_payouts(TableReader(root.get("payouts", dict, {}), "payouts", source, text), family, coin,
                            source, text)
    api = _read_api(TableReader(root.get("api", dict, {}), "api", source, text))
    root.finish()
    return PoolConfig(
        family=family,
        coin=coin,
        address=address,
        payout_script=payout_script,
        daemons=tuple(daemons),
        stratum=stratum,
        work=work,
        pool_tag=pool_tag,
        node_id=node_id,
        extranonce2_size=extranonce2_size,
        log_level=log_level,
        share_log=share_log,
        name=name,
        data_dir=data_dir,
        database=database,
        redis=redis,
        blocks=blocks,
        payouts=payouts,
        api=api,
        source=source,
    )


def _read_stratum(reader: TableReader, source: str, text: str) -> StratumConfig:
    ports_raw = reader.get("ports", list, allowed="a list of [[stratum.ports]] tables")
    if not ports_raw:
        raise reader.error("stratum.ports", "at least one [[stratum.ports]] entry is required")
    ports = []
    for index, entry in enumerate(ports_raw):
        port = TableReader(entry, f"stratum.ports[{index}]", source, text)
        number = port.number("port", ..., 0, 65535, integer=True)  # 0: any free port
        min_difficulty = port.number("min_difficulty", 0.001, 1e-12, 1e18)
        max_difficulty = port.number("max_difficulty", 1e15, 1e-12, 1e18)
        if max_difficulty < min_difficulty:
            raise port.error(f"stratum.ports[{index}].max_difficulty", "must be >= min_difficulty")
        difficulty = port.number("difficulty", 0.0, 0.0, 1e18)
        if difficulty and not min_difficulty <= difficulty <= max_difficulty:
            raise port.error(
                f"stratum.ports[{index}].difficulty", "must be within [min_difficulty, max_difficulty]"
            )
        ports.append(
            PortConfig(
                port=number,
                host=port.get("host", str, "0.0.0.0"),
                difficulty=difficulty,
                min_difficulty=min_difficulty,
                max_difficulty=max_difficulty,
                vardiff=port.get("vardiff", bool, True),
                target_share_s=port.number("target_share_s", 15.0, 0.05, 3600),
                retarget_s=port.number("retarget_s", 90.0, 0.1, 86400),
                variance_pct=port.number("variance_pct", 30.0, 0, 100),
                name=port.get("name", str, ""),
            )
        )
        port.finish()
    fixed = [p.port for p in ports if p.port]
    if len(set(fixed)) != len(fixed):
        raise reader.error("stratum.ports", "two entries use the same port")
    config = StratumConfig(
        ports=tuple(ports),
        max_line_bytes=reader.number("max_line_bytes", 16_384, 512, 1 << 20, integer=True),
        handshake_timeout_s=reader.number("handshake_timeout_s", 30.0, 0.1, 3600),
        idle_timeout_s=reader.number("idle_timeout_s", 900.0, 1, 86400),
        max_connections=reader.number("max_connections", 100_000, 1, 10_000_000, integer=True),
        max_connections_per_ip=reader.number("max_connections_per_ip", 1_000, 1, 10_000_000, integer=True),
        send_buffer_bytes=reader.number("send_buffer_bytes", 1 << 20, 4096, 1 << 30, integer=True),
        ban_invalid_ratio=reader.number("ban_invalid_ratio", 0.5, 0, 1),
        ban_min_shares=reader.number("ban_min_shares", 50, 1, 1_000_000, integer=True),
        ban_duration_s=reader.number("ban_duration_s", 600.0, 0, 86400 * 30),
        max_bad_messages=reader.number("max_bad_messages", 10, 1, 1_000_000, integer=True),
        max_requests_in_flight=reader.number("max_requests_in_flight", 64, 1, 4096, integer=True),
        get_transactions=reader.get("get_transactions", bool, False),
        session_resume_s=reader.number("session_resume_s", 600.0, 0, 86400),
    )
    reader.finish()
    return config


def _read_work(reader: TableReader) -> WorkConfig:
    notify_listen = reader.get("notify_listen", str, "")
    if notify_listen and not re.fullmatch(
        r"127\.\d+\.\d+\.\d+:\d{1,5}|\[::1\]:\d{1,5}|localhost:\d{1,5}", notify_listen
    ):
        raise reader.error("work.notify_listen", "must be a loopback HOST:PORT such as 127.0.0.1:8081")
    notify_secret = reader.get("notify_secret", str, "")
    if notify_listen and len(notify_secret) < 16:
        raise reader.error("work.notify_secret", "must be at least 16 characters when notify_listen is set")
    config = WorkConfig(
        template_refresh_s=reader.number("template_refresh_s", 30.0, 0.5, 3600),
        poll_interval_s=reader.number("poll_interval_s", 0.5, 0.01, 60),
        longpoll=reader.get("longpoll", bool, True),
        notify_listen=notify_listen,
        notify_secret=notify_secret,
        ntime_future_s=reader.number("ntime_future_s", 600, 0, 7200, integer=True),
    )
    reader.finish()
    return config


def _read_database(reader: TableReader) -> DatabaseConfig:
    dsn = reader.get("dsn", str, "")
    if dsn and not re.match(r"postgres(ql)?://", dsn):
        raise reader.error("database.dsn", "must be a postgresql:// DSN, or empty for the embedded server")
    config = DatabaseConfig(
        dsn=dsn,
        flush_interval_s=reader.number("flush_interval_s", 1.0, 0.05, 60),
        batch_size=reader.number("batch_size", 5000, 1, 1_000_000, integer=True),
        write_timeout_s=reader.number("write_timeout_s", 10.0, 0.1, 600),
        share_retention_days=reader.number("share_retention_days", 90, 1, 36500, integer=True),
    )
    reader.finish()
    return config


def _read_redis(reader: TableReader) -> RedisConfig:
    url = reader.get("url", str, "")
    if url and not re.match(r"rediss?://|unix://", url):
        raise reader.error("redis.url", "must be a redis:// URL, or empty for in-process statistics")
    reader.finish()
    return RedisConfig(url=url)


def _read_blocks(reader: TableReader, coin: Coin) -> BlocksConfig:
    confirmations = reader.number("confirmations", 0, 0, 100_000, integer=True)
    if confirmations and confirmations < coin.coinbase_maturity:
        raise reader.error("blocks.confirmations",
                           f"must be at least the coin's maturity ({coin.coinbase_maturity}), or 0 for that")
    config = BlocksConfig(
        confirmations=confirmations,
        orphan_confirmations=reader.number("orphan_confirmations", 10, 1, 10_000, integer=True),
        tracker_interval_s=reader.number("tracker_interval_s", 30.0, 0.1, 3600),
        late_submit_deadline_s=reader.number("late_submit_deadline_s", 10.0, 0, 3600),
        shutdown_drain_s=reader.number("shutdown_drain_s", 10.0, 0, 3600),
    )
    reader.finish()
    return config


def _percent(reader: TableReader, key: str, value: object) -> str:
    """Percents as exact decimal strings: a TOML number is read by its spelling, never as a binary float."""
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise reader.error(key, f"must be a percent such as \"1.5\", not {value!r}")
    text = repr(value) if isinstance(value, float) else str(value)
    try:
        number = Decimal(text)
    except InvalidOperation:
        raise reader.error(key, f"must be a percent such as \"1.5\", not {value!r}") from None
    if not number.is_finite() or not 0 <= number <= 100:
        raise reader.error(key, f"must be between 0 and 100, not {value!r}")
    return text


def _coins(reader: TableReader, key: str, value: object, *, low: int) -> int:
    """An amount of coins written as a decimal ("0.05", or a TOML number read by its spelling) ->
    integer satoshis; at least ``low`` satoshis, whole satoshis only."""
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise reader.error(key, f'must be an amount of coins such as "0.05", not {value!r}')
    text = repr(value) if isinstance(value, float) else str(value)
    try:
        number = Decimal(text)
    except InvalidOperation:
        raise reader.error(key, f'must be an amount of coins such as "0.05", not {value!r}') from None
    if not number.is_finite() or number > 21_000_000 * 4:
        raise reader.error(key, f"must be a finite amount of coins, not {value!r}")
    satoshis = number.scaleb(8)
    if satoshis != satoshis.to_integral_value():
        raise reader.error(key, f"has a fraction of a satoshi: {value!r}")
    if satoshis < low:
        raise reader.error(key, f"must be at least {Decimal(low).scaleb(-8):f} coins, not {value!r}")
    return int(satoshis)


def _read_payouts(reader: TableReader, family: CoinFamily, coin: Coin, source: str, text: str) -> PayoutsConfig:
    scheme = reader.get("scheme", str, "pplns")
    if scheme not in ("pplns", "prop", "solo", "pps", "fpps"):
        raise reader.error("payouts.scheme", "must be one of pplns, prop, solo, pps, fpps")
    fee = _percent(reader, "payouts.pool_fee_percent", reader.get("pool_fee_percent", (str, int, float), "1"))
    recipients = []
    for index, entry in enumerate(reader.get("fee_recipients", list, [])):
        item = TableReader(entry, f"payouts.fee_recipients[{index}]", source, text)
        address = item.get("address", str, allowed="an address of the coin")
        try:
            family.payout_script(coin, address)
        except FamilyError as exc:
            raise item.error(f"payouts.fee_recipients[{index}].address", str(exc)) from None
        percent = _percent(item, f"payouts.fee_recipients[{index}].percent", item.get("percent", (str, int, float)))
        item.finish()
        recipients.append((address, percent))
    if len({a for a, _ in recipients}) != len(recipients):
        raise reader.error("payouts.fee_recipients", "an address is listed twice")
    if Decimal(fee) + sum(Decimal(p) for _, p in recipients) > 100:
        raise reader.error("payouts.fee_recipients", "the pool fee and the fee recipients add up to more than 100 %")
    factor = reader.get("pplns_factor", (str, int, float), "2")
    factor_text = repr(factor) if isinstance(factor, float) else str(factor)
    try:
        factor_ok = Decimal(factor_text) > 0 and Decimal(factor_text).is_finite()
    except InvalidOperation:
        factor_ok = False
    if isinstance(factor, bool) or not factor_ok:
        raise reader.error("payouts.pplns_factor", f"must be a positive number, not {factor!r}")
    fee_paid_by = reader.get("tx_fee_paid_by", str, "pool", allowed='"pool" or "miners"')
    if fee_paid_by not in ("pool", "miners"):
        raise reader.error("payouts.tx_fee_paid_by", f'must be "pool" or "miners", not {fee_paid_by!r}')
    wallet = reader.get("wallet", str, "", allowed="a wallet name")
    if not re.fullmatch(r"[A-Za-z0-9_.-]{0,64}", wallet):
        raise reader.error("payouts.wallet", "must be 0-64 of A-Z a-z 0-9 _ . -")
    wallet_url = reader.get("wallet_url", str, "", allowed="an http:// URL of the daemon holding the wallet")
    if wallet_url and not re.match(r"https?://[^/\s]+", wallet_url):
        raise reader.error("payouts.wallet_url", f"must be an http:// or https:// URL, not {wallet_url!r}")
    config = PayoutsConfig(
        scheme=scheme, pool_fee_percent=fee, fee_recipients=tuple(recipients), pplns_factor=factor_text,
        interval_s=reader.number("interval_s", 60.0, 0.1, 86400), enabled=reader.get("enabled", bool, True),
        pps_settle_s=reader.number("pps_settle_s", 600.0, 0.0, 7 * 86400),
        payments_enabled=reader.get("payments_enabled", bool, True),
        payment_interval_s=reader.number("payment_interval_s", 600.0, 0.1, 7 * 86400),
        minimum_payout=_coins(reader, "payouts.minimum_payout", reader.get("minimum_payout", (str, int, float), "0.1"),
                              low=1000),
        tx_fee_paid_by=fee_paid_by,
        max_payees_per_tx=reader.number("max_payees_per_tx", 500, 1, 2000, integer=True),
        max_tx_fee=_coins(reader, "payouts.max_tx_fee", reader.get("max_tx_fee", (str, int, float), "0.1"), low=1),
        payment_confirmations=reader.number("payment_confirmations", 6, 1, 1000, integer=True),
        conflict_confirmations=reader.number("conflict_confirmations", 10, 1, 1000, integer=True),
        wallet=wallet, wallet_url=wallet_url,
    )
    reader.finish()
    return config


_ORIGIN = re.compile(r"https?://[A-Za-z0-9.-]+(:\d{1,5})?")
_LISTEN = re.compile(r"(?P<host>[A-Za-z0-9.-]+|\[[0-9A-Fa-f:]+\]):(?P<port>\d{1,5})")


def _read_trusted_networks(reader: TableReader) -> tuple[TrustedNetwork, ...]:
    form, networks = '"127.0.0.0/8" or a table { network = "10.0.0.0/8", rate_limit_per_s = 200 }', []
    for index, entry in enumerate(reader.get("trusted_networks", list, [], allowed=f"a list of {form}")):
        key, rate, burst, text = f"api.trusted_networks[{index}]", 0.0, None, entry
        if isinstance(entry, dict):
            item = TableReader(entry, key, reader.source, reader.text)
            text = item.get("network", str, allowed='a network such as "10.0.0.0/8"')
            rate = item.number("rate_limit_per_s", 0.0, 0, 1_000_000)
            if "rate_limit_burst" in entry:
                burst = item.number("rate_limit_burst", 0, 1, 1_000_000, integer=True)
            item.finish()
        elif not isinstance(entry, str):
            raise reader.error(key, f"must be a network such as {form}, not {entry!r}")
        try:
            network = ipaddress.ip_network(text.strip())  # strict: "10.0.0.1/8" has host bits set
        except ValueError as exc:
            raise reader.error(key, f"{text!r} is not a network in CIDR notation: {exc}") from None
        if any(other.network == network for other in networks):
            raise reader.error(key, f"{network} is listed twice")
        networks.append(TrustedNetwork(network, rate, burst))
    return tuple(networks)


def _read_api(reader: TableReader) -> ApiConfig:
    origins = reader.get("cors_origins", list, [], allowed='a list of origins such as ["https://pool.example"]')
    for origin in origins:
        if not isinstance(origin, str) or not (origin == "*" or _ORIGIN.fullmatch(origin)):
            raise reader.error("api.cors_origins",
                               f'each entry must be "*" or an origin such as "https://pool.example", not {origin!r}')
    host = reader.get("host", str, "127.0.0.1")
    if not re.fullmatch(r"[A-Za-z0-9.:-]+", host):
        raise reader.error("api.host", f"must be a host name or IP address, not {host!r}")
    metrics_listen = reader.get("metrics_listen", str, "")
    match = _LISTEN.fullmatch(metrics_listen)
    if metrics_listen and (match is None or not 0 < int(match["port"]) < 65536):
        raise reader.error("api.metrics_listen", 'must be HOST:PORT such as "127.0.0.1:9108", or "" for none')
    config = ApiConfig(
        enabled=reader.get("enabled", bool, False),
        host=host,
        port=reader.number("port", 8080, 0, 65535, integer=True),
        cors_origins=tuple(origins),
        rate_limit_per_s=reader.number("rate_limit_per_s", 20.0, 0, 1_000_000),
        rate_limit_burst=reader.number("rate_limit_burst", 40, 1, 1_000_000, integer=True),
        trust_forwarded_for=reader.get("trust_forwarded_for", bool, False),
        trusted_networks=_read_trusted_networks(reader),
        cache_s=reader.number("cache_s", 10.0, 0, 3600),
        metrics_listen=metrics_listen,
        workers=reader.number("workers", 1, 1, 64, integer=True),
    )
    reader.finish()
    return config
