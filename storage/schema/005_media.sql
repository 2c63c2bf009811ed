-- The media repository. Bytes live in media_chunks (fixed-size pieces, so
-- neither an upload nor a download holds a whole file in memory) unless the
-- operator keeps them in a directory (in_dir).
CREATE TABLE media (
    media_id      TEXT PRIMARY KEY,
    uploader      TEXT NOT NULL,
    content_type  TEXT NOT NULL,
    filename      TEXT,
    size          INTEGER NOT NULL DEFAULT 0,
    sha256        TEXT,
    created_ts    INTEGER NOT NULL,
    -- pending: created by /create and waiting for its bytes until expires_ts;
    -- uploading: bytes arriving; ready: complete.
    state         TEXT NOT NULL,
    expires_ts    INTEGER,
    in_dir        INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX media_uploader ON media(uploader, state);
CREATE INDEX media_created ON media(created_ts);

CREATE TABLE media_chunks (
    media_id  TEXT NOT NULL REFERENCES media(media_id) ON DELETE CASCADE,
    seq       INTEGER NOT NULL,
    data      BLOB NOT NULL,
    PRIMARY KEY (media_id, seq)
);

CREATE TABLE media_thumbnails (
    media_id      TEXT NOT NULL REFERENCES media(media_id) ON DELETE CASCADE,
    width         INTEGER NOT NULL,
    height        INTEGER NOT NULL,
    method        TEXT NOT NULL,
    content_type  TEXT NOT NULL,
    data          BLOB NOT NULL,
    PRIMARY KEY (media_id, width, height, method)
);
