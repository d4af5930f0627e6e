-- 0054 rewrote stored feed URLs out of chat tool calls; a URL withheld is not restored (no one
-- may read it again: the feed's token is stored only as its hash). Nothing to undo.
SELECT 1;
