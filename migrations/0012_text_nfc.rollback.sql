-- Nothing to undo: the forms a row held before 0012 are not kept, and NFC text is what the
-- API before it accepted too.
SELECT 1;
