"""Stratum v1 server: framing (protocol.py), per-connection methods (session.py), the server (server.py)."""
