-- Rasa's SQLTrackerStore table, exactly as Rasa (SQLAlchemy) creates it on PostgreSQL,
-- so that a database written by Rasa can be served by palaver and the other way round.
-- IF NOT EXISTS: a database Rasa created already has it.
CREATE TABLE IF NOT EXISTS events (
    id SERIAL NOT NULL,
    sender_id VARCHAR(255) NOT NULL,
    type_name VARCHAR(255) NOT NULL,
    timestamp FLOAT,
    intent_name VARCHAR(255),
    action_name VARCHAR(255),
    data TEXT,
    PRIMARY KEY (id)
);
CREATE INDEX IF NOT EXISTS ix_events_sender_id ON events (sender_id);
