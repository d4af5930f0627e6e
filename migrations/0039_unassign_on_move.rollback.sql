DROP TRIGGER tasks_unassign_on_move ON tasks;
DROP FUNCTION tasks_unassign_on_move();
