"""Helpers shared by the test modules (fixtures live in ``tests/conftest.py``).

* ``web`` — the one way to sign in, to get a CSRF token, to post a form, to get a bearer token;
* ``accounts`` — roles, permissions and users read and written directly in the database;
* ``ledger`` — jobs put into given states, read back fresh, and snapshots of what an action could change;
* ``mail`` — email jobs, and the later email a "nothing else arrives" check waits for;
* ``faults`` — the fault suite's witnesses (the jobs' own files) and a database that refuses work.
"""
