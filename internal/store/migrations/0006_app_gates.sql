-- An app an operator paused (its new production requests are held) or put
-- in maintenance (they are answered with a 503 page). No row: the app
-- serves as usual. The row is the state the router is given on every push.
CREATE TABLE app_gates (
    app            TEXT PRIMARY KEY REFERENCES apps(name),
    mode           TEXT NOT NULL CHECK (mode IN ('paused', 'maintenance')),
    max_wait_ns    INTEGER NOT NULL DEFAULT 0,  -- paused: how long one request is held
    max_held       INTEGER NOT NULL DEFAULT 0,  -- paused: how many are held at once
    message        TEXT NOT NULL DEFAULT '',    -- maintenance: the page's text ('' for the default)
    retry_after_ns INTEGER NOT NULL DEFAULT 0,  -- maintenance: the Retry-After header
    set_by         TEXT NOT NULL DEFAULT '',    -- who set it, as a person reads it
    since          INTEGER NOT NULL
) STRICT;
