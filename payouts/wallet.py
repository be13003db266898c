"""What the payment sender needs of a wallet: the errors it tells apart.

The payment sender is handed a wallet client (the coin daemon's RPC client in `pool.rpc.client`);
that client's errors derive from these, so the payout code depends on no daemon module.
"""
from __future__ import annotations


class WalletError(Exception):
    """A wallet call failed; whether the wallet acted on it may be unknown."""


class WalletUnreachable(WalletError):
    """No usable answer from the wallet: the call may or may not have reached it."""
