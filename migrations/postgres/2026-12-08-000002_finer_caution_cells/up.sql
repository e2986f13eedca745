-- The grid that indexes cautions went from 0.01° to 0.001° cells. The cells are derived from
-- each caution's circle, which SQL cannot do: they are emptied here and rebuilt at start
-- (service::cautions::index_unindexed).
DELETE FROM caution_cells;
