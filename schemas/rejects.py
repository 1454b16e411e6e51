"""Reject ledger record: an input row that did not become an image, with its reason code.

`reason` is a `schemas.reasons.Reason` value; `retryable` says whether `--retry-failed` fetches it again.
"""

from __future__ import annotations

import pyarrow as pa

from schemas.validate import declare

VERSION = 1

REJECT_SCHEMA = declare(
    "reject_ledger",
    VERSION,
    [
        pa.field("row_key", pa.string(), nullable=False),
        pa.field("product_id", pa.string()),
        pa.field("url", pa.string()),
        pa.field("stage", pa.string(), nullable=False),  # feed | fetch | clean
        pa.field("reason", pa.string(), nullable=False),
        pa.field("detail", pa.string()),
        pa.field("retryable", pa.bool_(), nullable=False),
        pa.field("http_status", pa.int32()),
        pa.field("attempts", pa.int32()),
        pa.field("partition", pa.string(), nullable=False),
        pa.field("recorded_at", pa.timestamp("us", tz="UTC"), nullable=False),
    ],
)
