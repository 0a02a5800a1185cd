-- Layer queue, version 3: a cap on leases that keep running out, and autovacuum that keeps up.
--
-- `lease_expiries` counts how often a document's lease ran out (its holder neither moved it on nor
-- released it, and a later claim took it) since the document was last staged. A document that
-- crashes every worker that claims it would otherwise be claimed forever; the claim statement
-- moves it to `failed` (reason `lease_expired`) once the count reaches the queue's cap.
ALTER TABLE documents ADD COLUMN lease_expiries integer NOT NULL DEFAULT 0;

-- The documents table churns: every document is inserted, updated at least twice and its claim
-- index entry dies on completion. PostgreSQL's default thresholds (20 % of the table for vacuum,
-- 10 % for analyze) let a table of millions of completed rows collect hundreds of thousands of
-- dead claim-index entries before a vacuum, and keep statistics that describe another run's
-- documents. 2 % keeps both close behind.
ALTER TABLE documents SET (
    autovacuum_vacuum_scale_factor = 0.02,
    autovacuum_vacuum_insert_scale_factor = 0.02,
    autovacuum_analyze_scale_factor = 0.02
);
