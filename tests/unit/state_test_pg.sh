# The state database unit tests again, against a private PostgreSQL
# server (tests/pg-cluster): the same tests, the other backend. A server
# that cannot be started fails this test.
set -eu
exec sh "$TOP_SRCDIR/tests/pg-cluster" run "$TOP_BUILDDIR/tests/unit/state_test"
