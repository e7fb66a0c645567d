"""aiosqlite persistence: connection setup, migrations, repositories, the execution lease."""
