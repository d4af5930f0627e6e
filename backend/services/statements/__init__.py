"""The statements several domains compose: access, versions, rules, named rows, a task's place."""
