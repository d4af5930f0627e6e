DROP TRIGGER tasks_end_access_on_move ON tasks;
DROP FUNCTION tasks_end_access_on_move();
