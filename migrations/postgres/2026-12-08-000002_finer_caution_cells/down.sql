-- The older code indexes cautions under 0.01° cells; rebuild them by marking them again.
DELETE FROM caution_cells;
