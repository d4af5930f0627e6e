DROP TRIGGER users_hand_over_lists ON users;
DROP FUNCTION users_hand_over_lists();
