"""All DuckDB: plain ``(conn, …)`` functions over one connection, split by concept.

The Store actor (``actors.store``) owns the connection and runs them, writes inside its group
commit; nothing else opens the database file.
"""
