-- Rasa's SQLEventBroker table, as Rasa (SQLAlchemy) creates it on PostgreSQL. It lives
-- in the broker's own database (its name clashes with the tracker store's table).
CREATE TABLE IF NOT EXISTS events (
    id SERIAL NOT NULL,
    sender_id VARCHAR(255),
    data TEXT,
    PRIMARY KEY (id)
);
