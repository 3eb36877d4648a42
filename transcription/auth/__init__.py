"""Who may open ``/transcribe``: API keys, the handshake middleware, the auth-failure limit
and the origin check (docs/PROTOCOL.md "Transport and auth")."""
