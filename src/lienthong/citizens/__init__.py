"""E-form prefill from the National Population Database: ``prefill`` (look-up, minimised answer, audit)
and ``records`` (the audit record). Import them from their modules."""
