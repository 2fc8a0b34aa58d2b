-- The deployment engine's own details of a deployment (candidate slot,
-- instance count, green's weight, requests waiting to be acted on), as JSON
-- the store keeps but does not read; and which slot serves an app's live
-- revision, with how many instances.
ALTER TABLE deployments ADD COLUMN details TEXT NOT NULL DEFAULT '{}';
ALTER TABLE apps ADD COLUMN live_slot TEXT NOT NULL DEFAULT '';
ALTER TABLE apps ADD COLUMN live_instances INTEGER NOT NULL DEFAULT 0;
