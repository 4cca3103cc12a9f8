"""Online fees: callback schemes, payment states (paid once, forward only), and the callback handler.

``schemes`` and ``state`` are plain; ``callbacks`` (the handler, on the bus) is imported from its module.
"""

from lienthong.payments.schemes import (
    CONFIRM_FIELDS,
    INIT_FIELDS,
    PHIEN_BAN,
    QUERY_FIELDS,
    CallbackRefused,
    CallbackScheme,
    HmacFieldsScheme,
    PayGovScheme,
    field_text,
    paygov_code,
)
from lienthong.payments.state import RANK, TAKEN, Claim, PaymentStatus, Verdict, judge

__all__ = [
    "CONFIRM_FIELDS",
    "INIT_FIELDS",
    "PHIEN_BAN",
    "QUERY_FIELDS",
    "RANK",
    "TAKEN",
    "CallbackRefused",
    "CallbackScheme",
    "Claim",
    "HmacFieldsScheme",
    "PayGovScheme",
    "PaymentStatus",
    "Verdict",
    "field_text",
    "judge",
    "paygov_code",
]
