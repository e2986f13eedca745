-- Room on each page of the outbox for a leased row's new version: a delivery worker's claim
-- writes only the lease columns, which no index covers, so PostgreSQL can keep the new
-- version on the same page as a heap-only tuple (no new index entries). Applies to pages
-- written from now on.
ALTER TABLE notifications SET (fillfactor = 70);
