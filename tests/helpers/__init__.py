"""Helpers shared by the test modules (fixtures live in ``tests/conftest.py``).

* ``web`` — the one way to sign in, to get a CSRF token, to post a form, to get a bearer token;
* ``accounts`` — roles, permissions and users read and written directly in the database;
* ``ledger`` — jobs put into given states, read back fresh, and snapshots of what an action could change.
"""
