-- PostgreSQL's outbox leaves room on its pages for a leased row's new version (see the
-- PostgreSQL migration of the same name). SQLite has no such setting, and its claim moves the
-- row within the index anyway: nothing to change, but the two trees keep the same names.
SELECT 1;
