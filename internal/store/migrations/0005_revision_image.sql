-- The image a revision pinned when it was created (JSON: ref, id, digest),
-- for apps that run images; '' for a revision of processes.
ALTER TABLE revisions ADD COLUMN image TEXT NOT NULL DEFAULT '';
