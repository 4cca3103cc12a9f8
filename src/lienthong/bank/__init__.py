"""Bank statements and their reconciliation with the payments lienthong confirmed.

- ``records``: what a statement file says, as lienthong reads it (transactions and per-statement
  summaries); ``statements.read_statements``, the one entry point, tells the formats apart;
- ``camt``: ISO 20022 camt.053 (statements) and camt.054 (notifications), namespace versions 001.02 to
  001.08, read as a stream with hardened XML settings;
- ``csvfile``: a bank's CSV export, read through a column layout from config;
- ``matching``: bank transactions against confirmed payments, each result classified.
"""
