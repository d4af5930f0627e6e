DROP TRIGGER task_lists_trash_stays ON task_lists;
DROP FUNCTION task_lists_trash_stays();
