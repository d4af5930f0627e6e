-- depends: 0062_child_events
-- A task's CalDAV object (issue 62; specs/caldav.md, "One task, one object"): what a client
-- PUT, kept beside its task so that what we do not model (X- properties, unknown components
-- and parameters) comes back on later GETs, also after an edit through another door. A
-- declared child of its task (backend/models/dav_object.py): the trash keeps it and a restore
-- brings it back. One per task; `uid` is the client's UID verbatim and `name` the last
-- segment of the href it PUT to (decoded), both looked up within a collection (a list, or
-- the owner's tasks in no list). Neither is unique in the database: a restore, or a move
-- into a list that holds the same UID, may meet another task with it; the DAV layer serves
-- the most recently written one under it (specs/caldav.md, "The trash").
CREATE TABLE task_dav_objects (
    id          BIGINT      GENERATED ALWAYS AS IDENTITY,
    user_id     TEXT        NOT NULL,
    task_id     BIGINT      NOT NULL,
    list_id     BIGINT,
    uid         TEXT        NOT NULL,
    name        TEXT        NOT NULL,
    body        TEXT        NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT pk_task_dav_objects PRIMARY KEY (id),
    CONSTRAINT fk_task_dav_objects_user_id_task_id_tasks FOREIGN KEY (user_id, task_id)
        REFERENCES tasks (user_id, id) ON UPDATE CASCADE ON DELETE CASCADE,
    CONSTRAINT uq_task_dav_objects_user_id_task_id UNIQUE (user_id, task_id),
    CONSTRAINT ck_task_dav_objects_uid_length CHECK (char_length(uid) BETWEEN 1 AND 1024),
    CONSTRAINT ck_task_dav_objects_name_length CHECK (char_length(name) BETWEEN 1 AND 1024),
    CONSTRAINT ck_task_dav_objects_body_length CHECK (octet_length(body) <= 262144)
);
-- The child's keyset and the task key's cascade; an href's lookup in a list, and in the
-- owner's tasks in no list.
CREATE INDEX ix_task_dav_objects_task_id_id ON task_dav_objects (task_id, id);
CREATE INDEX ix_task_dav_objects_list_id_name ON task_dav_objects (list_id, name);
CREATE INDEX ix_task_dav_objects_user_id_name ON task_dav_objects (user_id, name)
    WHERE list_id IS NULL;

CREATE TRIGGER task_dav_objects_admit_write
    BEFORE INSERT OR UPDATE OR DELETE ON task_dav_objects
    FOR EACH ROW WHEN (current_setting('task_api.refused', true) <> '')
    EXECUTE FUNCTION task_api_skip_refused_write();

-- No events of its own: a PUT records the task's (backend/models/dav_object.py `events=False`).
CALL task_children_register('task_dav_objects');
