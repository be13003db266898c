"""Reading the block fixtures in tests/data/blocks (sources in its README)."""
from __future__ import annotations

import json
import pathlib

DATA = pathlib.Path(__file__).resolve().parent / "data"
BLOCKS = DATA / "blocks"


def load_block(name: str) -> dict:
    return json.loads((BLOCKS / f"{name}.json").read_text())


def genesis_fixtures() -> dict[str, dict]:
    return json.loads((BLOCKS / "genesis.json").read_text())


def genesis_header(entry: dict) -> bytes:
    return (
        entry["version"].to_bytes(4, "little")
        + bytes(32)
        + bytes.fromhex(entry["merkleroot"])[::-1]
        + entry["time"].to_bytes(4, "little")
        + int(entry["bits"], 16).to_bytes(4, "little")
        + entry["nonce"].to_bytes(4, "little")
    )


class Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def take(self, n: int) -> bytes:
        out = self.data[self.pos : self.pos + n]
        if len(out) != n:
            raise ValueError("truncated")
        self.pos += n
        return out

    def varint(self) -> int:
        first = self.take(1)[0]
        if first < 0xFD:
            return first
        return int.from_bytes(self.take({0xFD: 2, 0xFE: 4, 0xFF: 8}[first]), "little")


def read_tx(reader: Reader) -> dict:
    """One transaction: its non-witness serialization and, for the coinbase, the scriptSig span."""
    start = reader.pos
    version = reader.take(4)
    # Extended form: marker 0x00 then flags (1 = witness; 8 = Litecoin MWEB, as on the HogEx).
    flags = 0
    if reader.data[reader.pos] == 0 and reader.data[reader.pos + 1] != 0:
        flags = reader.take(2)[1]
    segwit = bool(flags & 1)
    body_start = reader.pos
    inputs = []
    for _ in range(reader.varint()):
        reader.take(36)
        length = reader.varint()
        script_start = reader.pos
        reader.take(length)
        reader.take(4)
        inputs.append((script_start - body_start + 4, length))
    for _ in range(reader.varint()):
        reader.take(8)
        reader.take(reader.varint())
    body_end = reader.pos
    if segwit:
        for _ in inputs:
            for _ in range(reader.varint()):
                reader.take(reader.varint())
    if flags & 8 and reader.take(1) != b"\x00":
        raise ValueError("transactions carrying an MWEB body are not parsed here")
    locktime = reader.take(4)
    stripped = version + reader.data[body_start:body_end] + locktime
    return {"raw": reader.data[start : reader.pos], "stripped": stripped, "inputs": inputs}


def parse_block(block: bytes) -> tuple[bytes, list[dict], bytes]:
    """(header, transactions, what follows them: 0x01 + the MWEB block on Litecoin after activation)."""
    reader = Reader(block)
    header = reader.take(80)
    txs = [read_tx(reader) for _ in range(reader.varint())]
    return header, txs, block[reader.pos :]
