"""What the directives ask lienthong to prove from the dossier ledger: integrity checks (no dossier
"completed" without its real result) and per-unit KPIs against their targets; ``jobs`` runs both on the
scheduler."""
