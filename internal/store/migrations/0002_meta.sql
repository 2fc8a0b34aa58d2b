-- Small named facts about the installation, such as the check value that
-- tells whether the params key in use is the one the data was written with.
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value BLOB NOT NULL
) STRICT;
