"""The database: engine and transactions, the embedded server, migrations, pre-flight checks."""
