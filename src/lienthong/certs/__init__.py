"""Keys and certificates: TLS contexts for destinations (verified server, optional client certificate)."""

from lienthong.certs.tls import client_context

__all__ = ["client_context"]
