"""The message log a third party can verify (issue 13 §3): an RFC 9162 Merkle tree over every record."""
