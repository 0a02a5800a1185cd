-- Layer queue, version 1: pipelines and one row per document.
--
-- A document row is the whole queue state of one document: its stage, the generation of its
-- staged chunks, and its lease. `stage` is what status reports; `ready_stage` is the stage the row
-- can be claimed from: equal to `stage` when the row is not leased, and the stage it was claimed
-- from while it is (a lease that runs out sends the document back there, with no sweeper).

CREATE TABLE pipelines (
    id               text        PRIMARY KEY,
    target_namespace text        NOT NULL,
    config           jsonb       NOT NULL DEFAULT '{}'::jsonb,
    created_at       timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE documents (
    pipeline_id      text        NOT NULL REFERENCES pipelines (id) ON DELETE CASCADE,
    document_id      text        NOT NULL,
    stage            text        NOT NULL,
    ready_stage      text        NOT NULL,
    generation       bigint      NOT NULL DEFAULT 1,
    lease_owner      text,
    lease_expires_at timestamptz,
    attempts         integer     NOT NULL DEFAULT 0,
    failure_reason   text,
    updated_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (pipeline_id, document_id)
);

-- The claim index. Only rows that can still be claimed are in it: documents that reached a
-- terminal stage (`indexed`, `failed`) leave it, so claims cost the same however many documents
-- have completed. The claim statement repeats this predicate literally so that the planner can
-- use the index for a prepared (generic) plan. `lease_expires_at` is a key column so the lease
-- test runs on index entries.
CREATE INDEX documents_claimable
    ON documents (pipeline_id, ready_stage, lease_expires_at)
    WHERE ready_stage NOT IN ('indexed', 'failed');
