-- palaver's conversation list (GET /conversations) looks up each conversation's latest
-- pause/resume/restart/session start: an index on (sender_id, type_name) makes that a
-- few index probes instead of a scan of the conversation. Rasa ignores extra indexes.
CREATE INDEX IF NOT EXISTS ix_events_sender_type ON events (sender_id, type_name);
