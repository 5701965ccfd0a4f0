-- Scheduled reminders (palaver only; Rasa keeps them in memory), in the tracker
-- store's database so that every replica sees them. One row per conversation and
-- reminder name; a replica fires a due row after claiming it (claimed_by,
-- claimed_until = the end of its lease) and deletes it once fired.
CREATE TABLE IF NOT EXISTS palaver_reminders (
    id VARCHAR(64) NOT NULL PRIMARY KEY,
    sender_id VARCHAR(255) NOT NULL,
    name TEXT NOT NULL,
    intent TEXT,
    entities TEXT NOT NULL,
    due_at DOUBLE PRECISION NOT NULL,
    kill_on_user_msg BOOLEAN NOT NULL,
    output_channel TEXT,
    legacy_action TEXT,
    scheduled_at DOUBLE PRECISION NOT NULL,
    claimed_by TEXT,
    claimed_until DOUBLE PRECISION,
    UNIQUE (sender_id, name)
);
CREATE INDEX IF NOT EXISTS ix_palaver_reminders_due ON palaver_reminders (due_at);
