-- Layer queue, version 4: UDFs (Functions) on the same lease queue.
--
-- A UDF's items are rows of `documents` under a queue row of `pipelines` whose `kind` is `udf`
-- and whose id is `udf:` followed by the UDF's id, so claims, leases, attempts, backoff and the
-- lease-expiry cap are the pipelines' own statements. A UDF item's `document_id` is the row's
-- namespace, `/`, and its id as text; `payload` holds what the gateway needs back (the id as
-- JSON, the namespace, and the `input` read at discovery); `tag` is the spec version the item was
-- enqueued for; `marked_at_ms` is when its completion marker was acknowledged upstream (the
-- gateway's clock), so discovery can tell a row it may have read before the marker from one that
-- needs work again; `done_by` is the worker whose report completed it.
ALTER TABLE pipelines ADD COLUMN kind text NOT NULL DEFAULT 'pipeline';
ALTER TABLE documents ADD COLUMN payload jsonb;
ALTER TABLE documents ADD COLUMN tag text;
ALTER TABLE documents ADD COLUMN marked_at_ms bigint;
-- The worker whose report completed the item (a retried report of that worker counts again).
ALTER TABLE documents ADD COLUMN done_by text;

CREATE TABLE udfs (
    id               text        PRIMARY KEY,
    queue_id         text        NOT NULL UNIQUE REFERENCES pipelines (id) ON DELETE CASCADE,
    spec             jsonb       NOT NULL,
    paused           boolean     NOT NULL DEFAULT false,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    -- Discovery: one sweep at a time per UDF across every gateway replica (`sweep_started_at`
    -- is the claim on it), and what the last sweeps did.
    sweeps_completed bigint      NOT NULL DEFAULT 0,
    last_completed_at timestamptz,
    sweep_started_at timestamptz,
    sweep_progress   jsonb,
    last_error       text
);
