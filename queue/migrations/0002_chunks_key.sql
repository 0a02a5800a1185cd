-- Layer queue, version 2: where a document's staged chunks live.
--
-- The gateway writes a document's chunks to the object store first (one object per staging, its
-- key derived from the chunks' content) and then stages the document with that key, in one
-- statement. A crash between the two leaves an unreferenced object, never a pending document
-- without chunks. NULL for documents staged without chunks (`set_stage` with `create_missing`).
ALTER TABLE documents ADD COLUMN chunks_key text;
