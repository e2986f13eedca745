DROP TABLE caution_cells;
DROP TABLE cautions;
DROP TABLE incident_entries;
DROP TABLE incidents;
