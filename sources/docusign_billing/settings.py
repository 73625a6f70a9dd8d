"""Every default and name of the source in one place."""

from typing import Final

DEFAULT_BASE_URL: Final = "https://demo.docusign.net/restapi"
"""DocuSign's developer environment; production is https://www.docusign.net/restapi or naX hosts."""

PAST_DUE_PATH: Final = "/v2.1/accounts/{account_id}/billing_invoices_past_due"

# OAuth (JWT and refresh-token grants, account discovery).
OAUTH_BASE_URL: Final = "https://account-d.docusign.com"
"""DocuSign's developer account server; production is https://account.docusign.com."""
OAUTH_SCOPES: Final = "signature impersonation"
CONSENT_REDIRECT_URI: Final = "https://developers.docusign.com/platform/auth/consent"
"""Where DocuSign sends the browser after consent; must be registered on the integration key."""
JWT_ASSERTION_LIFETIME: Final = 3600
TOKEN_RENEW_MARGIN: Final = 300.0
"""Seconds before expiry at which a token is renewed (at most a fifth of its lifetime)."""

# HTTP behaviour: dlt's retrying requests client is configured from these.
REQUEST_TIMEOUT: Final = 30.0
"""Seconds before a hung request is abandoned (and retried)."""
MAX_ATTEMPTS: Final = 5
BACKOFF_FACTOR: Final = 1.0
MAX_RETRY_DELAY: Final = 60.0
"""Upper bound of one wait, also for `Retry-After` / `X-RateLimit-Reset`."""
RATE_LIMIT_MAX_WAIT: Final = 60.0
"""Longest wait for DocuSign's rate-limit window to free; past it (the hourly limit is spent) the
remaining accounts are left for a later run instead of stalling this one."""
BURST_WINDOW: Final = 30.0
"""Seconds of DocuSign's burst window (`X-BurstLimit-*`); it sends no reset time for it, so a
spent burst budget is waited out this long after the window was first seen."""
MAX_WORKERS: Final = 16
"""Accounts fetched at once; DocuSign's rate-limit headers slow them down before a 429."""
ANSWER_WAIT: Final = 0.005
"""Seconds a resource's fetch waits for its next answer before it lets the extract serve another
resource (`fetch.py`): long enough that a fast source is not put to sleep by dlt's 10 ms poll
between answers, short enough that the resources' parsing takes turns."""

# Destination layout.
PIPELINE_NAME: Final = "docusign_billing"
DATASET_NAME: Final = "billing"
"""Not `docusign_billing`: with `docusign_billing.duckdb` the catalog and schema names would
collide and dlt's merge SQL fails with a DuckDB binder error."""
RESERVED_DATASET_NAMES: Final = frozenset(
    {"information_schema", "pg_catalog", "pg_toast", "temp", "system"}
)
"""Schemas DuckDB and PostgreSQL keep for themselves: a load into one fails only once the data is
extracted ("Cannot create entry in system catalog", DuckDB's "Ambiguous reference" for temp and
system), leaving a package pending for it; refused up front as a configuration error."""
DUCKDB_FILE: Final = "docusign_billing.duckdb"
DEMO_PIPELINE_NAME: Final = "docusign_billing_demo"
DEMO_DUCKDB_FILE: Final = "docusign_billing_demo.duckdb"
DEMO_DATASET_NAME: Final = "billing_demo"
"""The demo's own pipeline state, DuckDB file and (on other destinations) dataset: synthetic
accounts never mix with real ones, e.g. stay "currently past due" after credentials are set up."""
DUCKDB_GLOBAL_CONFIG: Final = {"memory_limit": "128MB", "preserve_insertion_order": False}
"""Settings of the embedded DuckDB destination, beneath the user's own
`[destination.duckdb.credentials] global_config`. A bounded buffer (DuckDB spills past it) keeps a
load's memory flat however large it is; without insertion-order buffering (SQL rows have no order)
DuckDB inserts about a third faster and needs less memory."""

INVOICES_TABLE: Final = "past_due_invoices"
ITEMS_TABLE: Final = "past_due_invoices__invoice_items"
SNAPSHOTS_TABLE: Final = "past_due_snapshots"
ERRORS_TABLE: Final = "account_errors"

DEFAULT_RESOURCES: Final = (
    "past_due",
    "billing_invoices",
    "billing_payments",
    "billing_plan",
    "billing_charges",
)
"""What a run loads unless `resources` names others (see `resources.RESOURCES`)."""

# Incremental resources (billing_invoices, billing_payments).
HISTORY_YEARS: Final = 3
"""A first run back-fills this many years unless `history_start` is set."""
WINDOW_DAYS: Final = 365
"""Days per `from_date`/`to_date` window: DocuSign's own default span of these lists."""
LOOKBACK_DAYS: Final = 30
"""A later run starts this many days before the last window's end, so late payments and balance
changes of recent invoices are seen again."""

# Money: exact decimals wide enough for any amount DocuSign can send.
DECIMAL_PRECISION: Final = 38
DECIMAL_SCALE: Final = 9

BATCH_BYTES: Final = 5_000_000
"""Response bytes per parsed batch (about 5,000 invoices of 5 items): bounds memory (two batches
are typed at once) while keeping dlt's per-item overhead small and the row groups of its parquet
files large enough for DuckDB to insert them without merging many partial ones afterwards."""
PARSE_THREADS: Final = 2
"""Batches typed at once (`batches.py`): their Arrow kernels release the GIL, so a second thread
uses a second core; more waiting batches would only hold more memory."""
