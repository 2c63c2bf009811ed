-- Shared-secret registration nonces live in memory now: asking for one
-- needs no token, and must not cost the database a row.
DROP TABLE registration_nonces;
