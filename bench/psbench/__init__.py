"""psbench: the code of bench/run (patchsync against rsync, SPEC 11).

Modules: util (shared helpers and the run's settings), data (the data
sets), measure (running a command and what it cost on each side),
verify (server copy == console copy), scenarios (what each scenario
runs), table (the table and the JSON document).
"""
